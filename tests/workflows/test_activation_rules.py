"""The rules of an activation (SPEC sections 2 and 3) as requesters, approvers and
administrators of the demo tenant (section 8) meet them, on the time-skipping server."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import pytest
from temporalio.exceptions import WorkflowAlreadyStartedError

from pim.directories.faults import FaultyDirectory
from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State, Ticket
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.domain.status import ActivationStatus
from pim.identity.totp import current_code
from tests.conftest import running_worker

MEMBER = AccessType.member
WHY = "deploy the 1.4 hotfix to staging"


# --- helpers -----------------------------------------------------------------


@asynccontextmanager
async def worker(env, store, **kwargs):
    """A worker and its PimClient; whatever a failed test left running is
    terminated, so the next test can reuse the same workflow ids."""
    async with running_worker(env, store, **kwargs) as pim:
        pim.started = []
        try:
            yield pim
        finally:
            for rid in pim.started:
                with suppress(Exception):
                    await env.client.get_workflow_handle(rid).terminate("test cleanup")


def req(group: str, principal: str, **fields) -> ActivationRequest:
    fields.setdefault("justification", WHY)
    return ActivationRequest(group_id=group, access=MEMBER, principal_id=principal, **fields)


async def settle(env) -> None:
    await env.sleep(timedelta(seconds=1))


async def start(env, pim, request: ActivationRequest) -> tuple[str, ActivationStatus]:
    """Start a request and return its id and its status once it has settled."""
    rid = await pim.start(request)
    pim.started.append(rid)
    await settle(env)
    return rid, await pim.status(rid)


async def start_raw(env, pim, payload):
    """Start `GroupActivation` the way the `temporal` CLI would: any JSON, any workflow id."""
    workflow_id = f"raw-{uuid.uuid4().hex[:8]}"
    pim.started.append(workflow_id)
    return await env.client.start_workflow(
        "GroupActivation", payload, id=workflow_id, task_queue=pim.task_queue, result_type=ActivationStatus
    )


async def finish(env, pim, rid: str) -> ActivationStatus:
    """The outcome of a request that ends without waiting for a timer. Time does
    not skip here, so a workflow stuck on a failing task fails the test.
    (`time_skipping_unlocked()` is avoided on purpose: once any workflow has
    completed on the test server, an idle unlock jumps its clock 10 years.)"""
    return await asyncio.wait_for(pim.result(rid), timeout=15)


async def run_out(env, pim, rid: str) -> ActivationStatus:
    """Let an activation reach its expiry (and its revocation), then its outcome."""
    st = await pim.status(rid)
    await env.sleep(max(st.expires_at - await env.get_current_time(), timedelta(0)) + timedelta(minutes=1))
    return await finish(env, pim, rid)


async def outcome(env, pim, request: ActivationRequest) -> ActivationStatus:
    rid = await pim.start(request)
    pim.started.append(rid)
    return await finish(env, pim, rid)


def codes(status: ActivationStatus) -> list[str]:
    return [v.code for v in status.violations]


def refusals(status: ActivationStatus, signal: str) -> list[str]:
    return [e.note for e in status.events if (e.note or "").startswith(f"{signal} refused")]


async def is_member(store, group: str, principal: str) -> bool:
    return await store.has_membership(group, MEMBER, principal)


async def sources(env, store, group: str, principal: str) -> list[str]:
    at = await env.get_current_time()
    return sorted(g.source_kind for g in await store.live_grants(group, MEMBER, at, principal))


async def mfa(store, principal: str) -> MfaEvidence:
    return MfaEvidence(code=current_code(await store.mfa_secret(principal)))


# --- 1. early deactivation ---------------------------------------------------


async def test_deactivation_is_refused_in_the_first_five_minutes_except_for_an_administrator(time_env, demo):
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1)))
        assert st.state == State.active and await is_member(demo, "grp-dev", "alice")

        await pim.deactivate(rid, "alice", "changed my mind")
        await settle(time_env)
        st = await pim.status(rid)
        assert st.state == State.active and await is_member(demo, "grp-dev", "alice")
        assert any("first 5 minutes" in note for note in refusals(st, "deactivate"))

        await time_env.sleep(timedelta(minutes=6))
        await pim.deactivate(rid, "alice", "done")
        final = await finish(time_env, pim, rid)
        assert final.state == State.deactivated
        assert final.end_reason == "deactivated by alice: done"
        assert final.ended_at < final.expires_at - timedelta(minutes=45)
        assert not await is_member(demo, "grp-dev", "alice")

        # An administrator may pull the access at once.
        rid, st = await start(time_env, pim, req("grp-dev", "dave", duration=timedelta(hours=1)))
        assert st.state == State.active
        await pim.deactivate(rid, "admin", "access review")
        final = await finish(time_env, pim, rid)
        assert final.state == State.deactivated
        assert final.ended_at - final.granted_at < timedelta(minutes=5)
        assert not await is_member(demo, "grp-dev", "dave")


# --- 2. extension ------------------------------------------------------------


async def test_extension_within_the_maximum_moves_the_revocation(time_env, demo):
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1)))
        first_expiry = st.expires_at
        await pim.extend(rid, "alice", timedelta(hours=1), "the migration is taking longer")
        await settle(time_env)
        st = await pim.status(rid)
        assert st.expires_at == first_expiry + timedelta(hours=1) == st.granted_at + timedelta(hours=2)

        # Past the first expiry the access is still there.
        await time_env.sleep(first_expiry - await time_env.get_current_time() + timedelta(minutes=5))
        assert (await pim.status(rid)).state == State.active and await is_member(demo, "grp-dev", "alice")

        final = await run_out(time_env, pim, rid)
        assert final.state == State.expired
        assert st.expires_at <= final.ended_at < st.expires_at + timedelta(minutes=1)
        assert not await is_member(demo, "grp-dev", "alice")


async def test_the_requester_cannot_extend_past_the_maximum(time_env, demo):
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=3)))
        await pim.extend(rid, "alice", timedelta(hours=2), "still debugging the outage")
        await settle(time_env)
        after = await pim.status(rid)
        assert after.state == State.active and after.expires_at == st.expires_at
        assert any("maximum" in note for note in refusals(after, "extend"))

        final = await run_out(time_env, pim, rid)
        assert final.state == State.expired
        assert final.ended_at - final.granted_at < timedelta(hours=3, minutes=1)


async def test_an_approver_may_extend_past_the_maximum(time_env, demo):
    await demo.set_policy(
        "grp-dev",
        MEMBER,
        Policy(activation=ActivationSettings(approval=[ApprovalStage(approvers=["bob"])], max_duration=timedelta(hours=4))),
        by="admin",
    )
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=4)))
        assert st.state == State.pending_approval
        await pim.approve(rid, "bob", "release night")
        await settle(time_env)
        st = await pim.status(rid)
        assert st.state == State.active

        await pim.extend(rid, "bob", timedelta(hours=2), "the release slipped")
        await settle(time_env)
        st = await pim.status(rid)
        assert not refusals(st, "extend")
        assert st.expires_at == st.granted_at + timedelta(hours=6)

        final = await run_out(time_env, pim, rid)
        assert final.state == State.expired
        assert final.ended_at >= final.granted_at + timedelta(hours=6)
        assert not await is_member(demo, "grp-dev", "alice")


# --- 3. scheduled start ------------------------------------------------------


async def test_a_scheduled_activation_starts_later_and_can_be_canceled_before(time_env, demo):
    async with worker(time_env, demo) as pim:
        start_at = await time_env.get_current_time() + timedelta(hours=2)
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1), start_at=start_at))
        assert st.state == State.scheduled and st.starts_at == start_at and st.granted_at is None
        assert not await is_member(demo, "grp-dev", "alice")

        await time_env.sleep(timedelta(hours=2))
        await settle(time_env)
        st = await pim.status(rid)
        assert st.state == State.active and await is_member(demo, "grp-dev", "alice")
        assert st.granted_at >= start_at  # access time starts when access is granted
        assert st.expires_at == st.granted_at + timedelta(hours=1)
        assert (await run_out(time_env, pim, rid)).state == State.expired

        start_at = await time_env.get_current_time() + timedelta(hours=2)
        rid, st = await start(time_env, pim, req("grp-dev", "dave", duration=timedelta(hours=1), start_at=start_at))
        assert st.state == State.scheduled
        await pim.cancel(rid, "dave", "plans changed")
        final = await finish(time_env, pim, rid)
        assert final.state == State.canceled and final.granted_at is None
        assert not await is_member(demo, "grp-dev", "dave")


# --- 4. MFA ------------------------------------------------------------------


async def test_mfa_is_required_verified_and_never_accepted_twice(time_env, demo):
    async with worker(time_env, demo) as pim:
        missing = await outcome(time_env, pim, req("grp-ops", "alice"))
        assert missing.state == State.rejected and codes(missing) == ["mfa_required"]

        good = await mfa(demo, "alice")
        wrong = MfaEvidence(code=f"{(int(good.code) + 1) % 10**6:06d}")
        invalid = await outcome(time_env, pim, req("grp-ops", "alice", mfa=wrong))
        assert invalid.state == State.rejected and codes(invalid) == ["mfa_invalid"]

        # A dry run checks the code and uses it up: the next real request needs the next one.
        dry = await outcome(time_env, pim, req("grp-ops", "alice", mfa=good, validate_only=True))
        assert dry.state == State.canceled and codes(dry) == []
        used = await outcome(time_env, pim, req("grp-ops", "alice", mfa=good))
        assert used.state == State.rejected and codes(used) == ["mfa_replayed"]

        good = MfaEvidence(code=current_code(await demo.mfa_secret("alice"), time.time() + 30))
        rid, st = await start(time_env, pim, req("grp-ops", "alice", mfa=good))
        assert st.state == State.pending_approval, st.violations
        assert good.code not in st.model_dump_json()
        await pim.cancel(rid, "alice", "wrong group")
        assert (await finish(time_env, pim, rid)).state == State.canceled

        replayed = await outcome(time_env, pim, req("grp-ops", "alice", mfa=good))
        assert replayed.state == State.rejected and codes(replayed) == ["mfa_replayed"]


# --- 5. justification and ticket ---------------------------------------------


@pytest.mark.parametrize(
    "text, code", [("   ", "justification_required"), ("n/a", "justification_placeholder"), ("hotfix", "justification_too_short")]
)
async def test_a_poor_justification_is_rejected(time_env, demo, text, code):
    async with worker(time_env, demo) as pim:
        final = await outcome(time_env, pim, req("grp-dev", "alice", justification=text))
        assert final.state == State.rejected and codes(final) == [code]
        assert all(v.message.startswith("justification") for v in final.violations)
        assert not await is_member(demo, "grp-dev", "alice")


async def test_a_policy_may_require_a_ticket_of_a_given_form(time_env, demo):
    await demo.set_policy(
        "grp-dev",
        MEMBER,
        Policy(activation=ActivationSettings(max_duration=timedelta(hours=4), require_ticket=True, ticket_pattern=r"DEV-\d+")),
        by="admin",
    )
    async with worker(time_env, demo) as pim:
        missing = await outcome(time_env, pim, req("grp-dev", "alice"))
        assert codes(missing) == ["ticket_required"]

        bad = await outcome(time_env, pim, req("grp-dev", "alice", ticket=Ticket(system="jira", number="OPS-12")))
        assert codes(bad) == ["ticket_invalid"] and "ticket" in bad.violations[0].message

        rid, st = await start(time_env, pim, req("grp-dev", "alice", ticket=Ticket(system="jira", number="DEV-42")))
        assert st.state == State.active and st.ticket.number == "DEV-42"
        assert (await run_out(time_env, pim, rid)).state == State.expired


# --- 6. duration -------------------------------------------------------------


async def test_duration_above_the_maximum_is_refused_and_none_means_the_maximum(time_env, demo):
    async with worker(time_env, demo) as pim:
        too_long = await outcome(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=5)))
        assert too_long.state == State.rejected and codes(too_long) == ["duration_exceeds_max"]

        rid, st = await start(time_env, pim, req("grp-dev", "alice"))
        assert st.state == State.active
        assert st.requested_duration == timedelta(hours=4)
        assert st.expires_at == st.granted_at + timedelta(hours=4)
        assert (await run_out(time_env, pim, rid)).state == State.expired


# --- 7. eligibility ----------------------------------------------------------


async def test_only_eligible_users_activate_and_nesting_grants_the_user_alone(time_env, demo):
    async with worker(time_env, demo) as pim:
        refused = await outcome(time_env, pim, req("grp-dev", "bob"))
        assert refused.state == State.rejected and codes(refused) == ["not_eligible"]
        assert not await is_member(demo, "grp-dev", "bob")
        assert await sources(time_env, demo, "grp-dev", "bob") == []

        rids = []
        for user in ("alice", "dave"):  # active members of grp-sre, which is eligible in grp-dev
            rid, st = await start(time_env, pim, req("grp-dev", user, duration=timedelta(hours=1)))
            assert st.state == State.active
            rids.append(rid)
        members = [m.principal_id for m in await demo.memberships("grp-dev", MEMBER)]
        assert members == ["alice", "dave"]  # grp-sre itself never becomes a member
        assert await sources(time_env, demo, "grp-dev", "grp-sre") == []
        finals = [await run_out(time_env, pim, rid) for rid in rids]
        assert [f.state for f in finals] == [State.expired, State.expired]
        assert await demo.memberships("grp-dev", MEMBER) == []


# --- 8. one running activation per (group, access, principal) ----------------


async def test_a_second_concurrent_activation_is_refused(time_env, demo):
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1)))
        assert st.state == State.active
        with pytest.raises(WorkflowAlreadyStartedError):
            await pim.start(req("grp-dev", "alice", duration=timedelta(hours=1)))

        # Under another workflow id it is refused too: a request runs only under its canonical id.
        other = await start_raw(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1)))
        second = await finish(time_env, pim, other.id)
        assert second.state == State.rejected and codes(second) == ["workflow_id_mismatch"]
        assert rid in second.violations[0].message

        # The first one is untouched and still ends on its own.
        assert (await pim.status(rid)).state == State.active and await is_member(demo, "grp-dev", "alice")
        assert (await run_out(time_env, pim, rid)).state == State.expired
        assert not await is_member(demo, "grp-dev", "alice")


# --- 9. revocation survives a failing directory ------------------------------


async def test_revocation_is_retried_until_the_directory_accepts_it(time_env, demo):
    directory = FaultyDirectory(StoreDirectory(demo), "remove:fail:3")  # its first three removals fail
    async with worker(time_env, demo, directory=directory) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(minutes=30)))
        assert st.state == State.active

        await time_env.sleep(st.expires_at - await time_env.get_current_time() + timedelta(seconds=2))
        st = await pim.status(rid)
        assert st.state == State.revoking and len(directory.injected) >= 1
        assert await is_member(demo, "grp-dev", "alice")  # not yet: the directory refused

        await time_env.sleep(timedelta(minutes=1))
        final = await finish(time_env, pim, rid)
        assert final.state == State.expired and directory.injected == [("remove", "fail")] * 3
        assert not await is_member(demo, "grp-dev", "alice")
        assert await sources(time_env, demo, "grp-dev", "alice") == []


# --- 10. a permanent member keeps the access ---------------------------------


async def test_a_permanent_member_keeps_membership_when_an_activation_ends(time_env, demo):
    await demo.assign("grp-ops", "carol", kind="eligible", justification="incident commander", by="admin")
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-ops", "carol", duration=timedelta(hours=1), mfa=await mfa(demo, "carol")))
        assert st.state == State.pending_approval, st.violations
        await pim.approve(rid, "bob", "incident INC-7")
        await settle(time_env)
        assert (await pim.status(rid)).state == State.active
        assert await sources(time_env, demo, "grp-ops", "carol") == ["activation", "assignment"]

        final = await run_out(time_env, pim, rid)
        assert final.state == State.expired
        assert await is_member(demo, "grp-ops", "carol")
        assert await sources(time_env, demo, "grp-ops", "carol") == ["assignment"]


# --- 11. malformed input -----------------------------------------------------


async def test_a_malformed_request_is_rejected_promptly_naming_the_fields(time_env, demo):
    async with worker(time_env, demo) as pim:
        handle = await start_raw(
            time_env, pim, {"group_id": "grp-dev", "access": "admin", "principal_id": "alice", "duration": "-PT1H"}
        )
        final = await finish(time_env, pim, handle.id)
        assert final.state == State.rejected
        messages = " | ".join(v.message for v in final.violations)
        assert "access" in messages and "duration" in messages
        assert not await is_member(demo, "grp-dev", "alice")

        handle = await start_raw(time_env, pim, "hello")
        final = await finish(time_env, pim, handle.id)
        assert final.state == State.rejected and final.violations


# --- 12. validate_only -------------------------------------------------------


async def test_validate_only_grants_nothing(time_env, demo):
    async with worker(time_env, demo) as pim:
        dry = await outcome(time_env, pim, req("grp-dev", "alice", validate_only=True))
        assert dry.state == State.canceled and dry.end_reason.startswith("validate_only")
        assert dry.granted_at is None and dry.violations == []
        assert not await is_member(demo, "grp-dev", "alice")
        assert await sources(time_env, demo, "grp-dev", "alice") == []

        invalid = await outcome(time_env, pim, req("grp-dev", "bob", validate_only=True))
        assert invalid.state == State.rejected and codes(invalid) == ["not_eligible"]

        # The dry run took no claim: a real request goes through.
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1)))
        assert st.state == State.active
        assert (await run_out(time_env, pim, rid)).state == State.expired


# --- 13. cancelling the workflow ---------------------------------------------


async def test_cancelling_the_workflow_still_revokes(time_env, demo):
    async with worker(time_env, demo) as pim:
        rid, st = await start(time_env, pim, req("grp-dev", "alice", duration=timedelta(hours=1)))
        assert st.state == State.active and await is_member(demo, "grp-dev", "alice")

        await time_env.client.get_workflow_handle(rid).cancel()
        final = await finish(time_env, pim, rid)
        assert final.state == State.deactivated
        assert final.ended_at < final.expires_at
        assert not await is_member(demo, "grp-dev", "alice")
        assert await sources(time_env, demo, "grp-dev", "alice") == []
