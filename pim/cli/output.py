"""What the commands print: tables (Rich) for people, JSON for scripts.

On a terminal a table has a header rule and colour and fits the window. Anywhere
else (a pipe, a file, a test) it has no colour codes, is never wrapped or cut at
80 columns, and has one line per row with no trailing spaces, so that `grep`,
`awk` and `cut` read it as they read the tab-separated lines of earlier versions."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import typer
from pydantic import BaseModel

# Rich is imported by the commands that print a table.
if TYPE_CHECKING:
    from rich.console import Console

# Wide enough that no row of any table is ever wrapped when stdout is not a terminal.
UNWRAPPED_WIDTH = 100_000
# What an empty cell shows.
NOTHING = "-"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def console() -> Console:
    """A console on the current stdout (test runners replace it); markup, emoji codes
    and highlighting are off: cells hold user data, shown as it is."""
    from rich.console import Console

    common: dict[str, Any] = dict(markup=False, emoji=False, highlight=False)
    if stdout_is_terminal():
        return Console(**common)
    return Console(width=UNWRAPPED_WIDTH, color_system=None, force_terminal=False, soft_wrap=False, **common)


def printable(value: object) -> str:
    """A cell's text on one line: tabs become spaces, and line breaks and other control
    characters (terminal escape sequences among them) are shown escaped, never sent."""
    if value is None or value == "":
        return NOTHING
    return "".join(_printable_char(ch) for ch in str(value))


def _printable_char(ch: str) -> str:
    if ch.isprintable() or ch == " ":
        return ch
    if ch == "\t":
        return " "
    if ch in "\n\r":  # escaped, not broken: a value cannot forge a line of its own
        return "\\n" if ch == "\n" else "\\r"
    return f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}"


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table with a header, or nothing at all when there are no rows. On a narrow
    terminal only the last column (free text: details, reasons) wraps; ids and
    times stay whole."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    rows = list(rows)
    if not rows:
        return
    out = console()
    terminal = stdout_is_terminal()
    table = Table(
        box=box.SIMPLE_HEAD if terminal else None, show_edge=False, pad_edge=False, header_style="bold" if terminal else ""
    )
    for name in columns[:-1]:
        table.add_column(name, no_wrap=True)
    table.add_column(columns[-1], overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable(value)) for value in row))
    if terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())


def emit_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))
