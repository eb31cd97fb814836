"""Process exit that survives the Temporal SDK's native threads.

A process that used a Temporal client may crash during interpreter shutdown
after its work is done (TEMPORAL-NOTES.md); we flush and leave with os._exit so
that the exit code is the one the program meant."""

from __future__ import annotations

import os
import sys
from typing import Callable


def hard_exit(code: int) -> None:
    from pim.runtime.tracing import flush

    flush()  # os._exit skips the tracer provider's own exit hook: buffered spans would be lost
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def exit_cleanly(entry: Callable[[], object]) -> None:
    code = 0
    try:
        entry()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, (int, type(None))):
            print(exit_.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    hard_exit(code)
