"""Sources of access: a membership is held while at least one source (an
assignment or an activation) gives it. `confer` and `withdraw` keep the
directory in step with the sources, under the target's lock."""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from pim.directories.interface import GROUP_NOT_FOUND, Directory
from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.sessions import StoreWork
from pim.store.tables import GrantRow

log = get_logger("pim.directory")


async def confer(
    store: Store,
    directory: Directory,
    group_id: str,
    access: AccessType,
    principal_id: str,
    *,
    record_source: StoreWork | None,
    then: StoreWork | None = None,
) -> None:
    """One source of access begins: record it (None: it was written with something
    else, an assignment row), then make sure the directory holds the membership,
    then run `then` (its audit line). Under the target's lock, so that a concurrent
    last revoke cannot take the membership away after this source was counted.
    With the built-in directory, all of it is one transaction. Idempotent."""
    async with store.access_lock(group_id, AccessType(access).value, principal_id):
        if in_store(directory, store):
            await store.confer_in_store(group_id, access, principal_id, record_source=record_source, then=then)
            return
        if record_source is not None:
            await store.transact(record_source)
        await directory.add(group_id, access, principal_id)
        if then is not None:
            await store.transact(then)


async def withdraw(
    store: Store,
    directory: Directory,
    group_id: str,
    access: AccessType,
    principal_id: str,
    *,
    source_id: str,
    at: datetime,
    drop_source: StoreWork,
) -> list[GrantRow]:
    """One source of access ends: take the membership out of the directory unless
    another live source still gives it, then drop the source (`drop_source`: work
    in a store transaction). Under the target's lock, so that two sources ending
    together cannot each see the other and both leave the membership behind.
    With the built-in directory, all of it is one transaction. Returns the
    sources that keep it. Idempotent."""
    async with store.revocations.under_way(), store.access_lock(group_id, AccessType(access).value, principal_id):
        if in_store(directory, store):
            return await store.withdraw_in_store(
                group_id, access, principal_id, source_id=source_id, at=at, drop_source=drop_source
            )
        others = await store.other_live_sources(group_id, access, principal_id, source_id=source_id, at=at)
        if not others:
            await _remove_until_gone(directory, group_id, access, principal_id)
        await store.transact(drop_source)
    return others


def in_store(directory: Directory, store: Store) -> bool:
    """The directory is this store's own membership table: a change of access and
    its bookkeeping can then be written in one transaction, one trip to the store
    where there were three or four, each queued behind every other in a burst."""
    return isinstance(directory, StoreDirectory) and directory.store is store


async def _remove_until_gone(directory: Directory, group_id: str, access: AccessType, principal_id: str) -> None:
    """A revocation never gives up: a directory's permanent refusal (forbidden, bad
    request) is retried like an outage, so it keeps alerting until someone fixes
    it. A group the directory no longer has holds nobody: that is revoked."""
    try:
        await directory.remove(group_id, access, principal_id)
    except ApplicationError as error:
        if error.type == GROUP_NOT_FOUND:
            log.warning(
                "revoking from a group the directory no longer has: nothing to remove",
                group_id=group_id,
                access=AccessType(access).value,
                principal_id=principal_id,
            )
            return
        if error.non_retryable:
            raise ApplicationError(
                f"revocation refused by the directory (retried until it succeeds): {error.message}",
                type=error.type,
                non_retryable=False,
            ) from error
        raise
