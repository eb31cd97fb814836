"""The interface every directory implements: where grants and revocations write
membership. Every operation is idempotent."""

from __future__ import annotations

from typing import Protocol

from pim.domain.models import AccessType

# The ApplicationError type every directory raises for a group it does not have.
GROUP_NOT_FOUND = "directory_group_not_found"


class Directory(Protocol):
    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None: ...

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None: ...

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool: ...

    async def holders(self, group_id: str, access: AccessType) -> set[str]:
        """Every principal the directory holds as member (or owner) of the group."""
        ...
