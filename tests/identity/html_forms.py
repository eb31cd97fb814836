"""Reading the issuer's HTML as a person with a screen reader would: fields by the
text of their label, buttons by their text, alerts by their role."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Button:
    text: str
    name: str | None
    value: str | None


@dataclass
class Page:
    action: str | None = None
    method: str | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # by id
    labels: dict[str, str] = field(default_factory=dict)  # label text -> the id it is for
    buttons: list[Button] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    text: str = ""

    def field_named(self, label: str) -> str:
        """The `name` of the input whose label reads `label` (its accessible name)."""
        assert label in self.labels, f"no field labelled {label!r}: {sorted(self.labels)}"
        return self.inputs[self.labels[label]]["name"]

    def hidden(self) -> dict[str, str]:
        return {i["name"]: i.get("value", "") for i in self.inputs.values() if i.get("type") == "hidden"}

    def button(self, text: str) -> Button:
        found = [b for b in self.buttons if b.text == text]
        assert found, f"no button {text!r}: {[b.text for b in self.buttons]}"
        return found[0]

    def submission(self, values: dict[str, str], button: str) -> dict[str, str]:
        """What the browser posts: the hidden fields, `values` by label, and the button pressed."""
        data = self.hidden() | {self.field_named(label): value for label, value in values.items()}
        pressed = self.button(button)
        if pressed.name:
            data[pressed.name] = pressed.value or ""
        return data


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._label_for: str | None = None
        self._label_text = ""
        self._button: dict[str, str | None] | None = None
        self._button_text = ""
        self._alert_depth = 0
        self._alert_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.page.action, self.page.method = a.get("action"), a.get("method")
        elif tag == "input":
            self.page.inputs[a.get("id") or a.get("name", "")] = a
        elif tag == "label":
            self._label_for, self._label_text = a.get("for"), ""
        elif tag == "button":
            self._button, self._button_text = {"name": a.get("name"), "value": a.get("value")}, ""
        if a.get("role") == "alert":
            self._alert_depth, self._alert_text = 1, ""
        elif self._alert_depth:
            self._alert_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._label_for is not None:
            self.page.labels[self._label_text.strip()] = self._label_for
            self._label_for = None
        elif tag == "button" and self._button is not None:
            self.page.buttons.append(Button(self._button_text.strip(), self._button["name"], self._button["value"]))
            self._button = None
        if self._alert_depth:
            self._alert_depth -= 1
            if not self._alert_depth:
                self.page.alerts.append(self._alert_text.strip())

    def handle_data(self, data: str) -> None:
        self.page.text += data
        if self._label_for is not None:
            self._label_text += data
        if self._button is not None:
            self._button_text += data
        if self._alert_depth:
            self._alert_text += data


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page
