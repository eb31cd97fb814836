"""What the native endpoints take: JSON bodies that refuse unknown fields (naming
them), ids as the store takes them, ISO 8601 durations and zoned instants. A value
that does not fit is a 400 naming its field, never echoing what was sent."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from pim.domain.durations import Duration
from pim.domain.models import ID_PATTERN, MAX_TEXT, positive_duration, sane_instant


class NativeIn(BaseModel):
    """A body a caller sends: every field declared, anything else refused."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def _positive(value: timedelta) -> timedelta:
    checked = positive_duration(value)
    assert checked is not None
    return checked


Id = Annotated[str, Field(pattern=ID_PATTERN, description="letters, digits and . _ @ - (at most 128)")]
# The same, in a path or a query: a value that cannot name anything is a 400 before any lookup.
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="a group's or a principal's id")]
QueryId = Annotated[str | None, Query(pattern=ID_PATTERN)]
AssignmentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="e.g. asg-0123456789ab")]
Access = Literal["member", "owner"]
PositiveDuration = Annotated[Duration, AfterValidator(_positive), Field(description="ISO 8601, e.g. PT4H or P30D")]
Instant = Annotated[AwareDatetime, AfterValidator(sane_instant), Field(description="ISO 8601 with a zone")]
# Free text (justifications, reasons, names): bounded, and without NUL, which no database column takes.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=NO_NUL)]
TotpCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="the caller's current TOTP code")]
