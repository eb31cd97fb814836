"""How the pages write times and durations (Jinja filters): instants in UTC to the
minute, durations in days, hours and minutes, and the time left until an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pim.domain.durations import parse_iso_duration


def instant(value: Any) -> datetime | None:
    """A datetime from an API's ISO 8601 text (or a datetime), in UTC; None otherwise."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def span(value: Any) -> timedelta | None:
    """A timedelta from ISO 8601 text (PT2H, P1DT30M) or seconds; None otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and value:
        return parse_iso_duration(value)
    return None


def when(value: Any) -> str:
    """`2026-12-02 14:05 UTC`, or an empty string."""
    at = instant(value)
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


def iso(value: Any) -> str:
    """For `<time datetime="...">`."""
    at = instant(value)
    return at.isoformat().replace("+00:00", "Z") if at else ""


def human_duration(value: Any) -> str:
    """`2 h 30 min`, `1 d 4 h`, `45 s`; an empty string for nothing."""
    delta = span(value)
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes and not days else []
    if not parts:
        return f"{secs} s"
    return " ".join(parts)


def time_left(value: Any, now: datetime | None = None) -> str:
    """`1 h 59 min left`, `ended`, or an empty string when there is no end."""
    at = instant(value)
    if at is None:
        return ""
    left = at - (now or datetime.now(UTC))
    if left <= timedelta(0):
        return "ended"
    return f"{human_duration(left) if left >= timedelta(minutes=1) else 'less than a minute'} left"


FILTERS = {"when": when, "iso": iso, "duration": human_duration, "left": time_left}
