"""Microsoft Graph's shapes for PIM for Groups, as the Graph v1.0 reference writes
them: camelCase properties, string enums, ISO 8601 durations and instants.

Bodies that callers send refuse unknown properties (naming them), except OData
annotations such as `@odata.type`, which Graph SDKs add and Graph ignores."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pim.domain.durations import Duration

GRAPH_ROOT = "/v1.0"
GROUP_ROOT = "/v1.0/identityGovernance/privilegedAccess/group"
METADATA = "https://graph.microsoft.com/v1.0/$metadata"

AccessId = Literal["member", "owner"]
T = TypeVar("T")


def any_case(literal: Any) -> BeforeValidator:
    """Graph reads enum values whatever their case (its own examples send `AdminAssign`
    and `AfterDateTime`): the value of the Literal it matches, else as it came."""
    by_fold = {choice.casefold(): choice for choice in get_args(literal)}

    def canonical(value: Any) -> Any:
        return by_fold.get(value.casefold(), value) if isinstance(value, str) else value

    return BeforeValidator(canonical)


class GraphIn(BaseModel):
    """A body a caller sends: unknown properties refused, OData annotations ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_annotations(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and "@" in k)}
        return data


class GraphOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


def _absent(value: Any) -> bool:
    return value is None


class GraphEntity(GraphOut):
    """An entity: `@odata.context` (`.../$entity`) when read by itself; inside a
    collection or another entity it has none, and the property is left out."""

    odata_context: str | None = Field(default=None, alias="@odata.context", exclude_if=_absent)


class Identity(GraphOut):
    id: str
    displayName: str | None = None


class IdentitySet(GraphOut):
    """Who did something: a user, or an application (a service principal)."""

    user: Identity | None = None
    application: Identity | None = None


ExpirationType = Literal["notSpecified", "noExpiration", "afterDateTime", "afterDuration"]


class ExpirationPattern(GraphIn):
    type: Annotated[ExpirationType, any_case(ExpirationType)] = "notSpecified"
    duration: Duration | None = None
    endDateTime: datetime | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> "ExpirationPattern":
        if self.type == "afterDuration" and self.duration is None:
            raise ValueError("expiration.duration: required with type afterDuration")
        if self.type == "afterDateTime" and self.endDateTime is None:
            raise ValueError("expiration.endDateTime: required with type afterDateTime")
        if self.endDateTime is not None and self.endDateTime.tzinfo is None:
            raise ValueError("expiration.endDateTime: give a time zone (e.g. 2026-11-28T15:00:00Z)")
        return self


class RequestSchedule(GraphIn):
    startDateTime: datetime | None = None
    expiration: ExpirationPattern | None = None
    # Graph: recurring schedules are unsupported; so here.
    recurrence: None = None

    @model_validator(mode="after")
    def _zoned(self) -> "RequestSchedule":
        if self.startDateTime is not None and self.startDateTime.tzinfo is None:
            raise ValueError("scheduleInfo.startDateTime: give a time zone (e.g. 2026-11-28T15:00:00Z)")
        return self

    def duration_from(self, start: datetime) -> timedelta | None:
        """The requested duration: afterDuration's, or up to afterDateTime's end; None for the policy's."""
        expiration = self.expiration
        if expiration is None or expiration.type in ("notSpecified", "noExpiration"):
            return None
        if expiration.type == "afterDuration":
            return expiration.duration
        assert expiration.endDateTime is not None
        return expiration.endDateTime - start


class TicketInfo(GraphIn):
    ticketNumber: Annotated[str, Field(max_length=100)] | None = None
    ticketSystem: Annotated[str, Field(max_length=100)] | None = None


class ScheduleOut(GraphOut):
    startDateTime: datetime | None = None
    expiration: dict[str, Any] | None = None
    recurrence: None = None


def expiration_out(start: datetime | None, end: datetime | None, duration: timedelta | None = None) -> dict[str, Any]:
    """Graph's expirationPattern for a window: an end, a duration, or none."""
    from pim.domain.durations import format_duration

    if end is not None:
        return {"type": "afterDateTime", "endDateTime": _instant(end), "duration": None}
    if duration is not None:
        return {"type": "afterDuration", "endDateTime": None, "duration": format_duration(duration)}
    return {"type": "noExpiration", "endDateTime": None, "duration": None}


def _instant(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class Collection(GraphOut, Generic[T]):
    """A Graph collection: `value`, with its `@odata.context`."""

    odata_context: str = Field(alias="@odata.context")
    value: list[T]


def context(resource: str, entity: bool = False) -> str:
    return f"{METADATA}#{resource}" + ("/$entity" if entity else "")
