"""`pim login --user U --code C`: the development issuer's device page filled in as a
person would, by the labels of its fields ("User code", "User", "Code") and the
text of its button ("Sign in") (pim/identity/issuer/pages.py), without a browser.

Only an issuer that serves such a page can be signed in to this way: anything
else (a company's issuer, with its own sign-in) is refused, and the code is only
ever posted to the issuer's own origin."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from pim.cli.errors import CliError


@dataclass
class Form:
    action: str | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # by id
    labels: dict[str, str] = field(default_factory=dict)  # label text -> the input's id
    buttons: dict[str, tuple[str, str]] = field(default_factory=dict)  # text -> (name, value)
    alerts: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = Form()
        self._label: str | None = None
        self._button: tuple[str, str] | None = None
        self._alert = False
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form.action is None:
            self.form.action = a.get("action", "")
        elif tag == "input":
            self.form.inputs[a.get("id") or a.get("name", "")] = a
        elif tag == "label":
            self._label, self._text = a.get("for", ""), ""
        elif tag == "button":
            self._button, self._text = (a.get("name", ""), a.get("value", "")), ""
        if a.get("role") == "alert":
            self._alert, self._text = True, ""

    def handle_endtag(self, tag: str) -> None:
        text = " ".join(self._text.split())
        if tag == "label" and self._label is not None:
            self.form.labels[text], self._label = self._label, None
        elif tag == "button" and self._button is not None:
            self.form.buttons[text], self._button = self._button, None
        elif self._alert and tag == "p":
            self.form.alerts.append(text)
            self._alert = False

    def handle_data(self, data: str) -> None:
        self._text += data


def read_form(html: str) -> Form:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.form


def same_origin(url: str, other: str) -> bool:
    a, b = httpx.URL(url), httpx.URL(other)
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


async def sign_in_on_device_page(http: httpx.AsyncClient, page_url: str, user_code: str, user: str, code: str) -> None:
    """Post the device page's form signed in as `user` with `code`; CliError with the
    page's own alert when the issuer refuses (a wrong code, say)."""
    refusal = "--user and --code sign in on `pim dev`'s development issuer only; run `pim login` without them"
    page = await http.get(page_url)
    form = read_form(page.text) if page.status_code == 200 else Form()
    wanted = ("User code", "User", "Code")
    if form.action is None or not all(label in form.labels for label in wanted) or "Sign in" not in form.buttons:
        raise CliError(refusal, 2)
    action = urljoin(page_url, form.action)
    if not same_origin(action, page_url):  # the code goes to the issuer, nowhere else
        raise CliError(refusal, 2)
    data = {i["name"]: i.get("value", "") for i in form.inputs.values() if i.get("type") == "hidden" and i.get("name")}
    for label, value in zip(wanted, (user_code, user, code)):
        data[form.inputs[form.labels[label]]["name"]] = value
    name, value = form.buttons["Sign in"]
    if name:
        data[name] = value
    signed_in = await http.post(action, data=data)
    alerts = read_form(signed_in.text).alerts
    if signed_in.status_code != 200 or alerts:
        raise CliError(f"sign-in refused: {alerts[0] if alerts else f'HTTP {signed_in.status_code}'}")
