"""The built-in directory: the store's own membership table."""

from __future__ import annotations

from pim.domain.models import AccessType
from pim.store import Store


class StoreDirectory:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await self.store.set_membership(group_id, access, principal_id, present=True)

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await self.store.set_membership(group_id, access, principal_id, present=False)

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        return await self.store.has_membership(group_id, access, principal_id)

    async def holders(self, group_id: str, access: AccessType) -> set[str]:
        return {row.principal_id for row in await self.store.memberships(group_id, access)}
