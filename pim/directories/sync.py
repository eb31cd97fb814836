"""Does the directory hold what PIM says it should? The comparison is pure; the
expected side comes from the store's live sources of access (grants), the held
side from `Directory.holders`. Used by `pim directory diff` and the reconciler."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from pydantic import BaseModel

from pim.domain.models import AccessType

if TYPE_CHECKING:
    from pim.store import Store


class DirectoryDiff(BaseModel):
    group_id: str
    access: AccessType
    missing: list[str]  # a live source gives it; the directory lacks it
    unexpected: list[str]  # the directory holds it; no source gives it
    ok: list[str]  # both agree

    @property
    def in_sync(self) -> bool:
        return not self.missing and not self.unexpected


def compare(group_id: str, access: AccessType, *, expected: Iterable[str], held: Iterable[str]) -> DirectoryDiff:
    expected, held = set(expected), set(held)
    return DirectoryDiff(
        group_id=group_id,
        access=AccessType(access),
        missing=sorted(expected - held),
        unexpected=sorted(held - expected),
        ok=sorted(expected & held),
    )


async def expected_holders(store: Store, group_id: str, access: AccessType, at: datetime) -> set[str]:
    """Principals with at least one live source (assignment or activation) for (group, access) at `at`."""
    return {grant.principal_id for grant in await store.live_grants(group_id, access, at)}
