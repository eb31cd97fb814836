"""LdapDirectory against a real slapd (tests/directories/slapd.py): idempotent adds
and removes of members and owners, the last member of a groupOfNames, holders,
missing groups, a server that goes away and comes back, and escaping."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from ldap3 import MODIFY_ADD
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from pim.directories.ldap import Flavor, LdapDirectory
from pim.domain.models import AccessType, ActivationRequest
from pim.domain.status import AccessChange
from tests.directories.slapd import GROUPS, ROOT_DN, ROOT_PASSWORD, SUFFIX, Slapd, group_dn, user_dn

MEMBER, OWNER = AccessType.member, AccessType.owner


async def failure(awaitable) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await awaitable
    return caught.value


async def test_add_and_remove_a_member_twice(ldap_directory, slapd):
    assert not await ldap_directory.holds("grp-ops", MEMBER, "bob")
    for _ in range(2):
        await ldap_directory.add("grp-ops", MEMBER, "bob")
    assert slapd.values("grp-ops") == {user_dn("carol"), user_dn("bob")}
    assert await ldap_directory.holds("grp-ops", MEMBER, "bob")
    assert await ldap_directory.holders("grp-ops", MEMBER) == {"carol", "bob"}
    for _ in range(2):
        await ldap_directory.remove("grp-ops", MEMBER, "bob")
    assert slapd.values("grp-ops") == {user_dn("carol")}
    assert not await ldap_directory.holds("grp-ops", MEMBER, "bob")


async def test_add_and_remove_an_owner_twice(ldap_directory, slapd):
    for _ in range(2):
        await ldap_directory.add("grp-ops", OWNER, "bob")
    assert slapd.values("grp-ops", "owner") == {user_dn("bob")}
    assert await ldap_directory.holders("grp-ops", OWNER) == {"bob"}
    assert await ldap_directory.holds("grp-ops", OWNER, "bob")
    assert not await ldap_directory.holds("grp-ops", MEMBER, "bob")  # owner and member are independent
    for _ in range(2):
        await ldap_directory.remove("grp-ops", OWNER, "bob")
    assert slapd.values("grp-ops", "owner") == set()
    assert await ldap_directory.holders("grp-ops", OWNER) == set()


async def test_the_last_member_gives_way_to_the_placeholder_and_back(ldap_directory, slapd):
    """groupOfNames must keep a member: removing the last one leaves the empty DN
    (PIM_LDAP_EMPTY_MEMBER), which holders never report; the next add drops it."""
    await ldap_directory.remove("grp-ops", MEMBER, "carol")
    with slapd.connect() as conn:
        conn.search(group_dn("grp-ops"), "(objectClass=*)", attributes=["member"])
        assert conn.response[0]["raw_attributes"]["member"] == [b""]
    assert await ldap_directory.holders("grp-ops", MEMBER) == set()
    await ldap_directory.remove("grp-ops", MEMBER, "carol")  # still idempotent with only the placeholder left
    assert await ldap_directory.holders("grp-dev", MEMBER) == set()  # created with the placeholder
    await ldap_directory.add("grp-ops", MEMBER, "alice")
    with slapd.connect() as conn:
        conn.search(group_dn("grp-ops"), "(objectClass=*)", attributes=["member"])
        assert conn.response[0]["raw_attributes"]["member"] == [user_dn("alice").encode()]


async def test_a_placeholder_of_your_choice(slapd):
    nobody = f"cn=nobody,{SUFFIX}"
    directory = LdapDirectory(
        slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password="slapd-test-secret", empty_member=nobody, timeout=3
    )
    await directory.remove("grp-ops", MEMBER, "carol")
    assert slapd.values("grp-ops") == {nobody}
    assert await directory.holders("grp-ops", MEMBER) == set()
    await directory.add("grp-ops", MEMBER, "carol")
    assert slapd.values("grp-ops") == {user_dn("carol")}


async def test_holders_report_foreign_dns_as_they_are(ldap_directory, slapd):
    service = f"cn=backup-agent,ou=services,{SUFFIX}"
    with slapd.connect() as conn:
        conn.modify(group_dn("grp-ops"), {"member": [(MODIFY_ADD, [service])]})
    assert await ldap_directory.holders("grp-ops", MEMBER) == {"carol", service}


async def test_a_missing_group_is_permanent_except_for_remove(ldap_directory, slapd):
    for call in (
        ldap_directory.add("grp-nope", MEMBER, "bob"),
        ldap_directory.holds("grp-nope", MEMBER, "bob"),
        ldap_directory.holders("grp-nope", OWNER),
    ):
        error = await failure(call)
        assert error.type == "directory_group_not_found" and error.non_retryable
        assert "grp-nope" in error.message
    # A revocation must never fail for good: a group that is gone holds nobody.
    await ldap_directory.remove("grp-nope", MEMBER, "bob")


async def test_an_entry_that_is_not_a_group_is_not_found(slapd):
    directory = LdapDirectory(
        slapd.url,
        base_dn=SUFFIX,
        bind_dn=ROOT_DN,
        bind_password="slapd-test-secret",
        group_dn="uid={group_id},ou=people,{base}",
        timeout=3,
    )
    error = await failure(directory.holders("alice", MEMBER))
    assert error.type == "directory_group_not_found" and error.non_retryable
    assert (await failure(directory.holds("alice", MEMBER, "bob"))).type == "directory_group_not_found"


async def test_a_server_that_is_down_is_retryable_and_works_again_when_back(ldap_directory, slapd):
    await ldap_directory.add("grp-ops", MEMBER, "bob")
    slapd.stop()
    started = time.monotonic()
    for call in (
        ldap_directory.add("grp-ops", MEMBER, "alice"),
        ldap_directory.remove("grp-ops", MEMBER, "bob"),
        ldap_directory.holders("grp-ops", MEMBER),
    ):
        error = await failure(call)
        assert error.type == "directory_unavailable" and not error.non_retryable
        assert slapd.url in error.message
    assert time.monotonic() - started < 10  # refused at once, not after a hang
    slapd.start()
    await ldap_directory.add("grp-ops", MEMBER, "alice")  # what Temporal's retry would do
    await ldap_directory.remove("grp-ops", MEMBER, "bob")
    assert await ldap_directory.holders("grp-ops", MEMBER) == {"carol", "alice"}


async def test_a_server_that_hangs_times_out_and_is_retryable(slapd):
    directory = LdapDirectory(slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password="slapd-test-secret", timeout=1)
    os.kill(slapd.process.pid, signal.SIGSTOP)  # the port still accepts connections; nothing answers
    try:
        started = time.monotonic()
        error = await failure(directory.add("grp-ops", MEMBER, "bob"))
        assert error.type == "directory_unavailable" and not error.non_retryable
        assert time.monotonic() - started < 5  # well inside the activity's 30 s start-to-close timeout
    finally:
        os.kill(slapd.process.pid, signal.SIGCONT)
    await directory.add("grp-ops", MEMBER, "bob")
    assert await directory.holds("grp-ops", MEMBER, "bob")


async def test_a_refused_bind_is_retryable_and_never_shows_the_password(slapd):
    directory = LdapDirectory(slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password="wrong-password-xyz", timeout=3)
    error = await failure(directory.add("grp-ops", MEMBER, "bob"))
    assert error.type == "directory_auth_failed" and not error.non_retryable
    assert "wrong-password-xyz" not in str(error) and "wrong-password-xyz" not in repr(directory)


async def test_a_grant_with_a_wrong_bind_password_is_retried_until_the_password_is_right(demo, slapd):
    """The grant_access activity on slapd: refused with the wrong password (retryable,
    and neither the error nor the failure Temporal records names it), then the same
    activity input succeeds once the worker has the right one (what a retry after a
    fixed secret and a restart does)."""
    wrong = "wrong-password-xyz"
    # An admitted request: its run holds the claim, under the policy in force.
    request = ActivationRequest(group_id="grp-ops", access=MEMBER, principal_id="alice", duration=timedelta(hours=1))
    run_key = f"{request.workflow_id}#run-1"
    policy, version = await demo.policy("grp-ops", MEMBER)
    now = datetime.now(UTC)
    assert await demo.claim_activation("grp-ops", MEMBER, "alice", run_key, now) == run_key
    change = AccessChange(
        request_id=request.workflow_id,
        run_key=run_key,
        group_id="grp-ops",
        access=MEMBER,
        principal_id="alice",
        at=now,
        expires_at=now + timedelta(hours=1),
        request=request,
        policy=policy,
        policy_version=version,
    )
    refused = LdapDirectory(slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password=wrong, timeout=3)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(AccessActivities(demo, refused).grant_access, change)
    error = caught.value
    assert error.type == "directory_auth_failed" and error.non_retryable is False
    assert slapd.url in error.message and ROOT_DN in error.message
    recorded = Failure()
    DataConverter.default.failure_converter.to_failure(error, DataConverter.default.payload_converter, recorded)
    for text in (str(error), repr(error), str(recorded), repr(refused)):
        assert wrong not in text and ROOT_PASSWORD not in text
    assert user_dn("alice") not in slapd.values("grp-ops")

    right = LdapDirectory(slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password=ROOT_PASSWORD, timeout=3)
    await ActivityEnvironment().run(AccessActivities(demo, right).grant_access, change)
    assert user_dn("alice") in slapd.values("grp-ops")
    assert await right.holds("grp-ops", MEMBER, "alice")


ODD = ["o'brien", "a,b", "x+y=z", " lead", "trail ", "#hash", "back\\slash", 'quote"d', "semi;colon<>", "café"]


async def test_odd_ids_are_escaped_both_ways(ldap_directory, slapd):
    for ident in ODD:
        await ldap_directory.add("grp-ops", MEMBER, ident)
        await ldap_directory.add("grp-ops", MEMBER, ident)
        assert await ldap_directory.holds("grp-ops", MEMBER, ident)
    assert await ldap_directory.holders("grp-ops", MEMBER) == {"carol", *ODD}
    assert len(slapd.values("grp-ops")) == len(ODD) + 1  # one value each: none split or merged
    for ident in ODD:
        await ldap_directory.remove("grp-ops", MEMBER, ident)
    assert await ldap_directory.holders("grp-ops", MEMBER) == {"carol"}


async def test_a_group_id_that_needs_escaping(ldap_directory, slapd):
    group_id = "ops, eu+1 #2"
    with slapd.connect() as conn:
        Slapd.add_group(conn, group_id, members=[""], dn=ldap_directory.groups.render(group_id))
    await ldap_directory.add(group_id, MEMBER, "bob")
    await ldap_directory.add(group_id, OWNER, "alice")
    assert await ldap_directory.holders(group_id, MEMBER) == {"bob"}
    assert await ldap_directory.holders(group_id, OWNER) == {"alice"}
    with slapd.connect() as conn:  # an injection attempt finds nothing, and changes nothing
        conn.search(GROUPS, "(cn=ops*)", attributes=["cn"])
        assert [r["attributes"]["cn"] for r in conn.response if r["type"] == "searchResEntry"] == [[group_id]]


async def test_a_single_valued_owner_is_never_taken_from_someone_else(slapd):
    """AD's managedBy holds one owner: adding a second is refused, not replaced. Played
    here on groupOfNames' owner attribute with the single-owner rule of the AD flavour."""
    directory = LdapDirectory(slapd.url, base_dn=SUFFIX, bind_dn=ROOT_DN, bind_password="slapd-test-secret", timeout=3)
    directory.flavor = Flavor(group_class="groupOfNames", owner_attribute="owner", single_owner=True, needs_member=True)
    await directory.add("grp-ops", OWNER, "bob")
    await directory.add("grp-ops", OWNER, "bob")
    error = await failure(directory.add("grp-ops", OWNER, "alice"))
    assert error.type == "directory_owner_conflict" and error.non_retryable
    await directory.remove("grp-ops", OWNER, "alice")  # not the owner: nothing to do
    assert slapd.values("grp-ops", "owner") == {user_dn("bob")}
    await directory.remove("grp-ops", OWNER, "bob")
    await directory.remove("grp-ops", OWNER, "bob")
    assert slapd.values("grp-ops", "owner") == set()
    await directory.add("grp-ops", OWNER, "alice")
    assert await directory.holders("grp-ops", OWNER) == {"alice"}
