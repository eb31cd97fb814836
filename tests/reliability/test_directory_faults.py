"""Issue 5, item 3: the directory fails, hangs past its timeout, or writes and
reports failure (PIM_DIRECTORY_FAULTS); grants are never doubled, revocation
happens exactly once, and `revoking` is visible while it is retried.

Time-skipping server, demo tenant: alice and dave are eligible for grp-dev
(through grp-sre; no approval). Time is moved with `env.sleep` and outcomes are
read with the `status` query, never by awaiting a result. While an activity
attempt is running the test server does not skip time, so a hang costs the
real 30 s of the activity's start-to-close timeout: both hang scenarios share
one test, marked slow (`make test-quick` skips it)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError

from pim.directories.faults import FaultPlan, FaultyDirectory, InjectedFault
from pim.directories.store_directory import StoreDirectory
from pim.domain.models import AccessType, ActivationRequest, State
from pim.domain.status import ActivationStatus
from tests.conftest import running_worker
from tests.polling import eventually
from workflows.options import GRANT

MEMBER = AccessType.member
GROUP = "grp-dev"
WHY = "deploy the 1.4 hotfix to staging"
TERMINAL = {State.rejected, State.denied, State.approval_expired, State.canceled, State.expired, State.deactivated, State.failed}


# --- helpers -----------------------------------------------------------------


@asynccontextmanager
async def worker(env, store, **kwargs):
    """A worker and its PimClient; whatever a failed test left running is terminated."""
    async with running_worker(env, store, **kwargs) as pim:
        pim.started = []
        try:
            yield pim
        finally:
            for rid in pim.started:
                with suppress(Exception):
                    await env.client.get_workflow_handle(rid).terminate("test cleanup")


async def start(pim, principal: str, duration: timedelta = timedelta(minutes=30)) -> str:
    rid = await pim.start(
        ActivationRequest(group_id=GROUP, access=MEMBER, principal_id=principal, justification=WHY, duration=duration)
    )
    pim.started.append(rid)
    return rid


async def until(env, pim, rid: str, done, *, step=timedelta(seconds=5), limit=timedelta(hours=1)) -> ActivationStatus:
    """Move time in steps until the status satisfies `done` (or fail after `limit`)."""
    return await eventually(
        lambda: pim.status(rid), until=done, what=f"{rid} to satisfy {done.__name__}", env=env, interval=step, timeout=limit
    )


def in_state(*states: State):
    def reached(st: ActivationStatus) -> bool:
        return st.state in states

    reached.__name__ = f"in_state({', '.join(s.value for s in states)})"
    return reached


def ended(st: ActivationStatus) -> bool:
    return st.state in TERMINAL


def path(st: ActivationStatus) -> list[str]:
    return [e.state.value for e in st.events]


async def audit_actions(store, rid: str) -> list[str]:
    return [row.action for row in await store.audit(request_id=rid)]


async def grant_rows(env, store, principal: str) -> list:
    at = await env.get_current_time()
    return [g for g in await store.live_grants(GROUP, MEMBER, at, principal) if g.source_kind == "activation"]


async def is_member(store, principal: str) -> bool:
    return await store.has_membership(GROUP, MEMBER, principal)


async def store_claimed(store, rid: str) -> bool:
    return rid in await store.running_activations(GROUP)


async def assert_granted_once(env, store, rid: str, principal: str) -> None:
    assert await is_member(store, principal)
    assert len(await grant_rows(env, store, principal)) == 1
    assert (await audit_actions(store, rid)).count("access_granted") == 1


async def assert_ended_cleanly(env, store, rid: str, principal: str) -> str:
    """What an operator checks after the end: no membership, no source, no claim, one
    end line (whose recorded state is returned)."""
    assert not await is_member(store, principal)
    assert await grant_rows(env, store, principal) == []
    assert await store.running_activations(GROUP) == []
    ends = [row for row in await store.audit(request_id=rid) if row.action == "activation_ended"]
    assert len(ends) == 1 and ends[0].details["revoked"] == "true"
    return ends[0].details["state"]


def faulty(store, plan: str) -> FaultyDirectory:
    return FaultyDirectory(StoreDirectory(store), plan)


# --- the setting -------------------------------------------------------------


def test_the_fault_plan_parses_in_order_per_operation():
    plan = FaultPlan.parse(" remove:fail:2 , add:hang:1,remove:lie:1")
    assert [plan.next_fault("add") for _ in range(3)] == ["hang", None, None]
    assert [plan.next_fault("remove") for _ in range(5)] == ["fail", "fail", "lie", None, None]


@pytest.mark.parametrize(
    "text, bad",
    [
        ("", "empty"),
        (" , ", "empty"),
        ("remove:fail", "'remove:fail'"),
        ("remove:fail:3:4", "'remove:fail:3:4'"),
        ("delete:fail:1", "'delete'"),
        ("add:explode:1", "'explode'"),
        ("add:fail:x", "'x'"),
        ("add:fail:0", "'0'"),
        ("add:fail:-1", "'-1'"),
        ("add:fail:2,remove:hang", "'remove:hang'"),
        ("remove:fail=directory_forbidden:1", "only `refuse`"),
        ("remove:refuse=:1", "error type ''"),
        ("remove:refuse=not-a-type:1", "'not-a-type'"),
    ],
)
def test_a_bad_fault_plan_names_the_setting_and_the_bad_part(text, bad):
    with pytest.raises(ValueError) as error:
        FaultPlan.parse(text)
    assert str(error.value).startswith("PIM_DIRECTORY_FAULTS") and bad in str(error.value)


async def test_each_mode_does_what_it_says(demo):
    directory = faulty(demo, "add:fail:1,add:lie:1,remove:hang:1")
    with pytest.raises(InjectedFault):
        await directory.add(GROUP, MEMBER, "bob")
    assert not await is_member(demo, "bob")  # fail: nothing written
    with pytest.raises(InjectedFault):
        await directory.add(GROUP, MEMBER, "bob")
    assert await is_member(demo, "bob")  # lie: written, reported as failed
    with pytest.raises(asyncio.TimeoutError):  # hang: never answers, and can be cancelled
        await asyncio.wait_for(directory.remove(GROUP, MEMBER, "bob"), timeout=0.2)
    assert await is_member(demo, "bob")
    await directory.remove(GROUP, MEMBER, "bob")  # the plan is used up: the real directory again
    assert not await is_member(demo, "bob") and not await directory.holds(GROUP, MEMBER, "bob")
    assert directory.injected == [("add", "fail"), ("add", "lie"), ("remove", "hang")]


async def test_a_refusal_is_a_non_retryable_application_error_of_its_type(demo):
    directory = faulty(demo, "add:refuse:1,remove:refuse=directory_forbidden:1")
    with pytest.raises(ApplicationError) as refused:
        await directory.add(GROUP, MEMBER, "bob")
    assert refused.value.non_retryable and refused.value.type == "directory_refused"
    assert not await is_member(demo, "bob")  # refused: nothing written
    await directory.add(GROUP, MEMBER, "bob")
    with pytest.raises(ApplicationError) as refused:
        await directory.remove(GROUP, MEMBER, "bob")
    assert refused.value.non_retryable and refused.value.type == "directory_forbidden"
    assert await is_member(demo, "bob")
    assert directory.injected == [("add", "refuse"), ("remove", "refuse=directory_forbidden")]


# --- grant -------------------------------------------------------------------


async def test_a_grant_that_fails_a_few_times_becomes_active_once(time_env, demo):
    directory = faulty(demo, "add:fail:4")
    async with worker(time_env, demo, directory=directory) as pim:
        rid = await start(pim, "alice")
        await time_env.sleep(timedelta(seconds=2))
        st = await pim.status(rid)
        assert st.state == State.activating and not await is_member(demo, "alice")  # retrying

        st = await until(time_env, pim, rid, in_state(State.active))
        assert directory.injected == [("add", "fail")] * 4
        assert path(st) == ["validating", "activating", "active"]
        await assert_granted_once(time_env, demo, rid, "alice")
        # The retries took a while; the end is still the grant's start plus the duration, to the second.
        assert st.expires_at == st.granted_at + st.requested_duration
        st = await until(time_env, pim, rid, ended, step=timedelta(minutes=5))
        assert st.state == State.expired and st.expires_at <= st.ended_at < st.expires_at + timedelta(seconds=1)
        assert await assert_ended_cleanly(time_env, demo, rid, "alice") == "expired"


async def test_a_grant_that_writes_but_reports_failure_is_not_doubled(time_env, demo):
    directory = faulty(demo, "add:lie:2")
    async with worker(time_env, demo, directory=directory) as pim:
        rid = await start(pim, "alice")
        st = await until(time_env, pim, rid, in_state(State.active))
        assert directory.injected == [("add", "lie")] * 2
        assert path(st) == ["validating", "activating", "active"]
        await assert_granted_once(time_env, demo, rid, "alice")
        assert [m.principal_id for m in await demo.memberships(GROUP, MEMBER)] == ["alice"]

        st = await until(time_env, pim, rid, ended, step=timedelta(minutes=5))
        assert st.state == State.expired
        assert await assert_ended_cleanly(time_env, demo, rid, "alice") == "expired"


async def test_a_grant_that_never_succeeds_fails_the_activation_and_leaves_nothing(time_env, demo):
    attempts = GRANT["retry_policy"].maximum_attempts
    directory = faulty(demo, f"add:fail:{attempts + 5}")
    async with worker(time_env, demo, directory=directory) as pim:
        rid = await start(pim, "alice")
        st = await until(time_env, pim, rid, ended, step=timedelta(minutes=1), limit=timedelta(minutes=30))
        assert st.state == State.failed and st.end_reason.startswith("grant failed")
        assert directory.injected == [("add", "fail")] * attempts  # then the workflow gave up
        assert path(st) == ["validating", "activating", "revoking", "failed"]
        assert await assert_ended_cleanly(time_env, demo, rid, "alice") == "failed"
        assert "access_granted" not in await audit_actions(demo, rid)

        # The claim is gone: alice may ask again, and this time the directory answers.
        rid = await start(pim, "alice")
        await until(time_env, pim, rid, in_state(State.active))
        await assert_granted_once(time_env, demo, rid, "alice")


# --- revoke ------------------------------------------------------------------


async def test_a_revoke_that_fails_is_retried_and_visible_as_revoking(time_env, demo):
    directory = faulty(demo, "remove:fail:5")
    async with worker(time_env, demo, directory=directory) as pim:
        rid = await start(pim, "alice")
        st = await until(time_env, pim, rid, in_state(State.active))
        await time_env.sleep(st.expires_at - await time_env.get_current_time() + timedelta(seconds=2))

        st = await pim.status(rid)
        assert st.state == State.revoking and st.end_reason == "the activation reached its end"
        assert await is_member(demo, "alice")  # not yet: the directory refused
        assert await store_claimed(demo, rid)

        st = await until(time_env, pim, rid, ended, step=timedelta(seconds=10))
        assert st.state == State.expired and directory.injected == [("remove", "fail")] * 5
        assert path(st) == ["validating", "activating", "active", "revoking", "expired"]
        assert await assert_ended_cleanly(time_env, demo, rid, "alice") == "expired"


async def test_a_revoke_that_removes_but_reports_failure_ends_once(time_env, demo):
    directory = faulty(demo, "remove:lie:3")
    async with worker(time_env, demo, directory=directory) as pim:
        rid = await start(pim, "alice")
        st = await until(time_env, pim, rid, in_state(State.active))
        await time_env.sleep(st.expires_at - await time_env.get_current_time() + timedelta(seconds=2))
        st = await pim.status(rid)
        assert st.state == State.revoking and not await is_member(demo, "alice")  # removed, not yet confirmed

        st = await until(time_env, pim, rid, ended)
        assert st.state == State.expired and directory.injected == [("remove", "lie")] * 3
        assert await assert_ended_cleanly(time_env, demo, rid, "alice") == "expired"


# --- hangs (real time: the server does not skip time while an attempt runs) ---


@pytest.mark.slow  # about 35 s per store: two attempts time out in real time
async def test_grant_and_revoke_that_hang_past_their_timeout_are_retried(time_env, demo):
    """dave's revoke and alice's grant each hang once, at the same time, on
    workers built from the setting (the `directory_faults` of build_worker)."""
    async with (
        worker(time_env, demo, directory_faults="remove:hang:1") as revoker,
        worker(time_env, demo, directory_faults="add:hang:1") as granter,
    ):
        dave = await start(revoker, "dave", duration=timedelta(minutes=5))
        st = await until(time_env, revoker, dave, in_state(State.active))
        await time_env.sleep(st.expires_at - await time_env.get_current_time() - timedelta(seconds=2))

        alice = await start(granter, "alice")
        await asyncio.sleep(5)  # time is frozen now; dave's expiry comes in real time
        assert (await granter.status(alice)).state == State.activating
        assert (await revoker.status(dave)).state == State.revoking
        assert await is_member(demo, "dave") and not await is_member(demo, "alice")

        st = await until(time_env, granter, alice, in_state(State.active), step=timedelta(seconds=2))
        assert path(st) == ["validating", "activating", "active"]
        await assert_granted_once(time_env, demo, alice, "alice")

        st = await until(time_env, revoker, dave, ended, step=timedelta(seconds=2))
        assert st.state == State.expired
        assert path(st) == ["validating", "activating", "active", "revoking", "expired"]
        assert not await is_member(demo, "dave") and await grant_rows(time_env, demo, "dave") == []
        assert (await audit_actions(demo, dave)).count("activation_ended") == 1
        assert await demo.running_activations(GROUP) == [alice]  # only the one still active
