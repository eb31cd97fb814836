"""Where membership is written. Grant and revoke call a `Directory`; the built-in
one is the store's membership table. Every operation is idempotent."""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol

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


async def source_already_recorded() -> None:
    """For `confer` when the source was written with something else (an assignment row)."""


async def confer(store: Store, directory: Directory, group_id: str, access: AccessType, principal_id: str, *,
                 record_source: Callable[[], Awaitable[None]]) -> None:
    """One source of access begins: record it, then make sure the directory holds
    the membership. Under the target's lock, so that a concurrent last revoke
    cannot take the membership away after this source was counted. Idempotent."""
    async with store.access_lock(group_id, AccessType(access).value, principal_id):
        await record_source()
        await directory.add(group_id, access, principal_id)


async def withdraw(store: Store, directory: Directory, group_id: str, access: AccessType, principal_id: str, *,
                   source_id: str, at, drop_source: Callable[[], Awaitable[None]]) -> list:
    """One source of access ends: take the membership out of the directory unless
    another live source still gives it, then drop the source. Under the target's
    lock, so that two sources ending together cannot each see the other and both
    leave the membership behind. Returns the sources that keep it. Idempotent."""
    async with store.access_lock(group_id, AccessType(access).value, principal_id):
        others = await store.other_live_sources(group_id, access, principal_id, source_id=source_id, at=at)
        if not others:
            await directory.remove(group_id, access, principal_id)
        await drop_source()
    return others
