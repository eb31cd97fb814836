"""Where membership is written. Grant and revoke call a `Directory`; the built-in
one is the store's membership table. Every operation is idempotent."""

from __future__ import annotations

from typing import Protocol

from pim.models import AccessType
from pim.store import Store


class Directory(Protocol):
    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None: ...

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None: ...

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool: ...


class StoreDirectory:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await self.store.set_membership(group_id, access, principal_id, present=True)

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await self.store.set_membership(group_id, access, principal_id, present=False)

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        return await self.store.has_membership(group_id, access, principal_id)


async def withdraw(store: Store, directory: Directory, group_id: str, access: AccessType, principal_id: str, *,
                   source_id: str, at) -> list:
    """One source of access ends: take the membership out of the directory unless
    another live source still gives it. Returns the sources that keep it.
    Idempotent; the caller removes its own grant row afterwards."""
    others = await store.other_live_sources(group_id, access, principal_id, source_id=source_id, at=at)
    if not others:
        await directory.remove(group_id, access, principal_id)
    return others
