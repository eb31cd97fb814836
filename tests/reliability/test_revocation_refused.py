"""A directory that refuses a removal for good (LDAP or Graph answering
"forbidden", a group deleted meanwhile): revocation must neither give up nor
fail the workflow. A deleted group holds nobody, so that counts as revoked;
any other permanent refusal is retried like an outage until someone fixes it."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pytest
from temporalio.exceptions import ApplicationError

from pim.directories.faults import FaultyDirectory
from pim.directories.interface import GROUP_NOT_FOUND
from pim.directories.sources import withdraw
from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType
from pim.store.grants import remove_grant_in

MEMBER = AccessType.member
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def refusing(store, error_type: str) -> FaultyDirectory:
    """The store's directory, except that its next removal is refused for good with `error_type`."""
    return FaultyDirectory(StoreDirectory(store), f"remove:refuse={error_type}:1")


async def granted(demo, source_id: str) -> None:
    await demo.add_grant("grp-dev", MEMBER, "alice", source_kind="activation", source_id=source_id, starts_at=NOW)
    await demo.set_membership("grp-dev", MEMBER, "alice", present=True)


async def test_a_group_the_directory_no_longer_has_counts_as_revoked(demo):
    await granted(demo, "run-1")
    directory = refusing(demo, GROUP_NOT_FOUND)
    await withdraw(
        demo,
        directory,
        "grp-dev",
        MEMBER,
        "alice",
        source_id="run-1",
        at=NOW,
        drop_source=partial(remove_grant_in, source_kind="activation", source_id="run-1"),
    )
    assert await demo.other_live_sources("grp-dev", MEMBER, "alice", source_id="none", at=NOW) == []
    assert directory.injected == [("remove", f"refuse={GROUP_NOT_FOUND}")]


async def test_a_permanent_refusal_is_retried_and_keeps_the_source(demo):
    await granted(demo, "run-2")
    directory = refusing(demo, "directory_forbidden")
    with pytest.raises(ApplicationError) as raised:
        await withdraw(
            demo,
            directory,
            "grp-dev",
            MEMBER,
            "alice",
            source_id="run-2",
            at=NOW,
            drop_source=partial(remove_grant_in, source_kind="activation", source_id="run-2"),
        )
    assert raised.value.non_retryable is False  # Temporal retries it, without limit for close_activation
    assert directory.injected == [("remove", "refuse=directory_forbidden")]
    refusal = raised.value.__cause__
    assert isinstance(refusal, ApplicationError) and refusal.non_retryable  # what the directory said: for good
    assert raised.value.type == "directory_forbidden" and refusal.message in raised.value.message
    # Nothing was forgotten: the source stays until the removal succeeds.
    sources = await demo.other_live_sources("grp-dev", MEMBER, "alice", source_id="none", at=NOW)
    assert [s.source_id for s in sources] == ["run-2"]
    assert await demo.has_membership("grp-dev", MEMBER, "alice")
