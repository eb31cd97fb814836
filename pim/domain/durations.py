"""Durations: one way to write them, one way to read them.

The wire contract writes a duration as ISO 8601 with days and time only:
`PT2H`, `PT1H30M`, `P3660D` (never years or months, which have no fixed length;
pydantic's own serializer would write 3,660 days as `P10Y10D`). Every model
field holding a duration is a `Duration`, so payloads, the store, messages and
the command line all show the same text. People may type `2h`, `90m`, `1h30m`,
`1d` or ISO 8601."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import PlainSerializer, TypeAdapter, ValidationError

# Longer than any policy allows, and far from datetime's limits: arithmetic on
# instants never overflows, whatever a caller sends.
MAX_DURATION = timedelta(days=3660)

_SHORT = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = TypeAdapter(timedelta)


def format_duration(value: timedelta) -> str:
    """ISO 8601 with days and time only: `P1DT2H`, `PT30M`, `PT1.5S`, `PT0S`."""
    sign = "-" if value < timedelta(0) else ""
    days, rest = divmod(abs(value), timedelta(days=1))
    hours, rest = divmod(rest, timedelta(hours=1))
    minutes, rest = divmod(rest, timedelta(minutes=1))
    seconds = rest.total_seconds()
    second_text = f"{seconds:.6f}".rstrip("0").rstrip(".") if seconds else ""
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (second_text, "S")) if n)
    if not days and not time:
        return "PT0S"
    return sign + "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def describe_duration(value: timedelta) -> str:
    """As people read it: `1 d 2 h`, `1 h 30 min`, `45 s`."""
    days, rest = divmod(value, timedelta(days=1))
    hours, rest = divmod(rest, timedelta(hours=1))
    minutes, rest = divmod(rest, timedelta(minutes=1))
    seconds = rest.total_seconds()
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{seconds:g} s" if seconds else "")
    return " ".join(p for p in parts if p) or "0 s"


# A timedelta that the JSON of every model writes with `format_duration`.
Duration = Annotated[timedelta, PlainSerializer(format_duration, return_type=str, when_used="json")]


def parse_iso_duration(text: str) -> timedelta | None:
    """An ISO 8601 duration (any form pydantic reads), or None."""
    try:
        return _ISO.validate_python(text.strip().upper())
    except ValidationError:
        return None


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """A positive duration typed by a person, or ValueError naming the field."""
    value = text.strip().lower()
    match = _SHORT.match(value)
    if value and match and any(len((g or "").lstrip("0")) > 12 for g in match.groups()):
        raise ValueError(f"{field}: must be at most P3660D")  # before int(): Python refuses > 4,300 digits
    result: timedelta | None
    if value and match and any(match.groups()):
        parts = dict(zip(("days", "hours", "minutes", "seconds"), (int(g or 0) for g in match.groups())))
        try:
            result = timedelta(**parts)
        except OverflowError:
            raise ValueError(f"{field}: must be at most P3660D") from None
    else:
        result = parse_iso_duration(text)
        if result is None:
            raise ValueError(f"{field}: {text!r} is not a duration (examples: 2h, 30m, 1h30m, PT2H)")
    if result <= timedelta(0):
        raise ValueError(f"{field}: must be positive")
    if result > MAX_DURATION:
        raise ValueError(f"{field}: must be at most P3660D")
    return result
