"""The acceptance test of the LDAP directory: activations through the real
GroupActivation workflow change group entries in a real slapd, seen by a search
of slapd itself; `pim directory diff` and the reconciler compare slapd with the store."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ldap3 import MODIFY_ADD, MODIFY_DELETE

from activities.reconcile import ReconcileActivities
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.reconcile import ReconcileInput
from pim.identity.totp import current_code
from tests.conftest import running_worker
from tests.directories.conftest import ldap_settings
from tests.directories.slapd import group_dn, user_dn
from tests.polling import settled
from tests.workflows.test_approval import finish, request_ops

PIM = str(Path(sys.executable).parent / "pim")
MEMBER, OWNER = AccessType.member, AccessType.owner


async def diff(slapd, store, *args: str) -> tuple[int, dict]:
    """`pim directory diff GROUP ... --json` in a subprocess, on this store and this slapd."""
    env = dict(os.environ, PIM_DATABASE_URL=store.url, PIM_LOG_LEVEL="WARNING", **ldap_settings(slapd))
    process = await asyncio.create_subprocess_exec(
        PIM, "directory", "diff", *args, "--json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode in (0, 1), err.decode()
    assert out, err.decode()
    return process.returncode, json.loads(out)


async def test_an_activation_adds_and_expiry_removes_the_member_in_slapd(time_env, demo, slapd, ldap_directory):
    """alice (eligible member of grp-ops, approver bob) and bob (eligible owner: MFA, admin approves)."""
    assert user_dn("alice") not in slapd.values("grp-ops") and slapd.values("grp-ops", "owner") == set()
    async with running_worker(time_env, demo, directory=ldap_directory) as pim:
        member_request = await request_ops(pim, demo)
        assert (await pim.status(member_request)).state == State.pending_approval
        assert user_dn("alice") not in slapd.values("grp-ops")  # nothing before the approval

        await pim.approve(member_request, "bob", "failover approved")
        owner_request = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=OWNER,
                principal_id="bob",
                duration=timedelta(hours=1),
                justification="rotate the group's owners",
                mfa=MfaEvidence(code=current_code(await demo.mfa_secret("bob"))),
            )
        )
        assert (await settled(pim, owner_request)).state == State.pending_approval
        await pim.approve(owner_request, "admin", "owner rotation agreed")
        assert (await settled(pim, member_request)).state == State.active
        assert (await settled(pim, owner_request, State.active)).state == State.active
        # slapd itself, searched apart from PIM: alice next to carol (the seed's permanent member), bob owner.
        assert slapd.values("grp-ops") == {user_dn("carol"), user_dn("alice")}
        assert slapd.values("grp-ops", "owner") == {user_dn("bob")}
        assert not await demo.has_membership("grp-ops", MEMBER, "alice")  # the store's own table is not used

        code, members = await diff(slapd, demo, "grp-ops")
        assert code == 0 and members["in_sync"] and members["ok"] == ["alice", "carol"]
        code, owners = await diff(slapd, demo, "grp-ops", "--owner")
        assert code == 0 and owners["ok"] == ["bob"] and owners["access"] == "owner"

        assert (await finish(time_env, pim, member_request)).state == State.expired
        assert (await finish(time_env, pim, owner_request)).state == State.expired
    assert slapd.values("grp-ops") == {user_dn("carol")}  # carol's permanent membership is untouched
    assert slapd.values("grp-ops", "owner") == set()
    assert (await diff(slapd, demo, "grp-ops"))[0] == 0


async def test_diff_reports_stray_and_missing_members_with_exit_1(demo, slapd):
    code, result = await diff(slapd, demo, "grp-ops")
    assert (code, result["missing"], result["unexpected"], result["ok"]) == (0, [], [], ["carol"])

    with slapd.connect() as conn:  # someone adds dave behind PIM's back
        conn.modify(group_dn("grp-ops"), {"member": [(MODIFY_ADD, [user_dn("dave")])]})
    code, result = await diff(slapd, demo, "grp-ops")
    assert code == 1 and result["unexpected"] == ["dave"] and result["missing"] == [] and not result["in_sync"]

    with slapd.connect() as conn:  # and takes carol out
        conn.modify(group_dn("grp-ops"), {"member": [(MODIFY_DELETE, [user_dn("carol")])]})
    code, result = await diff(slapd, demo, "grp-ops")
    assert code == 1 and (result["missing"], result["unexpected"], result["ok"]) == (["carol"], ["dave"], [])

    env = dict(os.environ, PIM_DATABASE_URL=demo.url, **ldap_settings(slapd))
    process = await asyncio.create_subprocess_exec(
        PIM, "directory", "diff", "grp-ops", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 1
    assert [line.split() for line in out.decode().splitlines()] == [
        ["finding", "principal"],
        ["missing", "carol"],
        ["unexpected", "dave"],
        ["grp-ops", "member:", "missing=1", "unexpected=1", "ok=0"],
    ]


async def test_diff_cannot_compare_when_slapd_is_down_or_the_group_unknown(demo, slapd):
    env = dict(os.environ, PIM_DATABASE_URL=demo.url, **ldap_settings(slapd))
    for args in (["grp-nope"], ["grp-ops"]):
        if args == ["grp-ops"]:
            slapd.stop()
        process = await asyncio.create_subprocess_exec(
            PIM, "directory", "diff", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await process.communicate()
        assert process.returncode == 2, err.decode()
        assert err.decode().startswith("error: ") and len(err.decode().strip().splitlines()) == 1
    assert "unreachable" in err.decode() and "slapd-test-secret" not in err.decode()


async def test_the_reconciler_removes_unsourced_members_found_in_slapd_unless_told_to_report(demo, slapd, ldap_directory):
    with slapd.connect() as conn:
        conn.modify(group_dn("grp-ops"), {"member": [(MODIFY_ADD, [user_dn("dave")])]})
        conn.delete(group_dn("grp-dev"))  # a group PIM knows that the directory lacks is skipped, not fatal
    # grp-ops is in PIM: nothing gives dave its membership, so the backstop removes it.
    report = await ReconcileActivities(demo, ldap_directory).reconcile_access(ReconcileInput(at=datetime.now(UTC)))
    assert [(f.group_id, f.access, f.principal_id) for f in report.unsourced] == [("grp-ops", MEMBER, "dave")]
    assert report.revoked == [] and report.released == [] and report.reported == []
    assert user_dn("dave") not in slapd.values("grp-ops") and user_dn("carol") in slapd.values("grp-ops")

    # A group whose policy says `unsourced_access: report` keeps it, reported.
    policy, _ = await demo.policy("grp-ops", MEMBER)
    await demo.set_policy("grp-ops", MEMBER, policy.model_copy(update={"unsourced_access": "report"}), by="test")
    with slapd.connect() as conn:
        conn.modify(group_dn("grp-ops"), {"member": [(MODIFY_ADD, [user_dn("dave")])]})
    report = await ReconcileActivities(demo, ldap_directory).reconcile_access(ReconcileInput(at=datetime.now(UTC)))
    assert [(f.group_id, f.principal_id) for f in report.reported] == [("grp-ops", "dave")] and report.unsourced == []
    assert user_dn("dave") in slapd.values("grp-ops")  # reported, left alone
