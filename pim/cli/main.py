"""The `pim` command line (SPEC section 4).

`pim status ID [--json]` is answered on a quick path when it can be
(pim/cli/quick.py); everything else runs through the Typer application
(pim/cli/app.py), which imports each command's module only when it runs."""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    from pim.cli.quick import answer
    from pim.runtime.process import exit_cleanly, hard_exit

    code = answer(sys.argv[1:])
    if code is not None:
        hard_exit(code)
    from pim.cli.app import run

    exit_cleanly(run)


def __getattr__(name: str) -> Any:
    """`app`, the Typer application, for tests and tools that take it from here."""
    if name == "app":
        from pim.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
