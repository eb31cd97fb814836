"""Durations as people type them: `2h`, `90m`, `1h30m`, `1d`, or ISO 8601 `PT2H`."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

from pim.domain.models import MAX_DURATION

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_SHORT = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = TypeAdapter(timedelta)


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """A positive duration, or ValueError naming the field."""
    value = text.strip().lower()
    match = _SHORT.match(value)
    if value and match and any(len((g or "").lstrip("0")) > 12 for g in match.groups()):
        raise ValueError(f"{field}: must be at most P3660D")  # before int(): Python refuses > 4,300 digits
    if value and match and any(match.groups()):
        parts = dict(zip(("days", "hours", "minutes", "seconds"), (int(g or 0) for g in match.groups())))
        try:
            result = timedelta(**parts)
        except OverflowError:
            raise ValueError(f"{field}: must be at most P3660D") from None
    else:
        try:
            result = _ISO.validate_python(text.strip().upper())
        except ValidationError:
            raise ValueError(f"{field}: {text!r} is not a duration (examples: 2h, 30m, 1h30m, PT2H)") from None
    if result <= timedelta(0):
        raise ValueError(f"{field}: must be positive")
    if result > MAX_DURATION:
        raise ValueError(f"{field}: must be at most P3660D")
    return result


def format_duration(value: timedelta) -> str:
    """ISO 8601, as the wire contract writes durations."""
    return _ISO.dump_python(value, mode="json")
