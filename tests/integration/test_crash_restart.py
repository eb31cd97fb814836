"""Crash and restart (issue 5, item 2): real worker processes, a real dev server
with its state on disk (`--db-filename`), and the store on PostgreSQL.

- the worker is killed (SIGKILL) while a request waits for approval, while its
  grant is in flight and while its revocation is in flight;
- the Temporal server itself is stopped (SIGTERM) and started again on the same
  port and database file while activations are active.

In each case every activation reaches the right end and the store matches it:
memberships, activation grant rows, activation claims, and exactly one
`access_granted` and one `activation_ended` audit line per request.

"In flight" is made certain rather than a matter of timing by holding the
PostgreSQL advisory lock that `Store.access_lock` takes for the target: the
activity starts on the worker and waits there until the worker is killed. An
activity lost with its worker is retried once its start-to-close timeout (30 s)
has passed, which is most of the time these tests take."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from pim.client import PimClient
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.status import ActivationStatus
from pim.identity.totp import current_code
from pim.operations.seed import seed_demo
from pim.runtime.temporal import SEARCH_ATTRIBUTE_NAMES, connect, find_binary
from pim.store import Store
from pim.store.tables import GrantRow
from tests.conftest import KEY_SETTINGS, TEST_SIGNER
from tests.integration.processes import free_port, until_ready
from tests.polling import eventually
from tests.postgres import waiting_for_access_locks
from workflows.activation import EXPIRY_LEAD
from workflows.search_attributes import PIM_STATE

ROOT = Path(__file__).resolve().parents[2]
MEMBER = AccessType.member
OPS, DEV = "grp-ops", "grp-dev"  # grp-ops: MFA and bob's approval; grp-dev: neither
JUSTIFICATION = "INC-77 failover drill"
SERVER_TIMEOUT = 30
READY_TIMEOUT = 30
RETRY_TIMEOUT = 75  # an activity lost with its worker is retried after its 30 s start-to-close timeout
END_TIMEOUT = 60
FINAL = {State.rejected, State.denied, State.approval_expired, State.canceled, State.failed, State.expired, State.deactivated}


# --- processes ---------------------------------------------------------------


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no log: {error})"


async def stop_process(proc: asyncio.subprocess.Process, sig: int, timeout: float) -> int:
    """Send `sig`; SIGKILL when the process is still there after `timeout`. Returns the exit code."""
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


class DevServer:
    """`temporal server start-dev` with its state in a file: stop it and start it
    again on the same port and file, and the workflows are still there."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "temporal.db"
        self.log = tmp_path / "temporal.log"
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        """Start the server and return a client once it serves the default namespace."""
        self.starts += 1
        attributes = [a for name in SEARCH_ATTRIBUTE_NAMES for a in ("--search-attribute", f"{name}=Keyword")]
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            out.write(f"--- start {self.starts} on port {self.port} ---\n".encode())
            self.proc = await asyncio.create_subprocess_exec(
                find_binary("temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(self.db),
                "--port",
                str(self.port),
                "--headless",
                "--ip",
                "127.0.0.1",
                "--log-level",
                "error",
                *attributes,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        proc = self.proc

        async def serving() -> Client:
            if proc.returncode is not None:
                raise AssertionError(f"dev server exited with {proc.returncode}:\n{tail(self.log)}")
            client = await asyncio.wait_for(connect(self.address, "default"), 5)
            await asyncio.wait_for(client.count_workflows(), 5)  # the namespace and visibility answer
            return client

        return await eventually(  # refused while it starts, namespace not yet there
            serving, what=f"the dev server to serve on {self.address}", timeout=SERVER_TIMEOUT, interval=0.2, ignoring=Exception
        )

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        return await stop_process(self.proc, sig, timeout)


@dataclass
class WorkerProcess:
    name: str
    log: Path
    proc: asyncio.subprocess.Process
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def count(self, needle: str) -> int:
        try:
            return self.log.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.proc.wait(), 10) == -signal.SIGKILL


@dataclass
# --- the harness: server, workers, store, locks ------------------------------

@dataclass
class Harness:
    tmp_path: Path
    store: Store
    server: DevServer
    pim: PimClient
    workers: list[WorkerProcess] = field(default_factory=list)
    locks: list[AsyncConnection] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.began:5.1f} s] {message}")

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **KEY_SETTINGS,
            "PIM_TEMPORAL_ADDRESS": self.server.address,
            "PIM_NAMESPACE": "default",
            "PIM_TASK_QUEUE": self.pim.task_queue,
            "PIM_DATABASE_URL": self.store.url,
            "PIM_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }

    async def start_worker(self) -> WorkerProcess:
        name = f"worker-{len(self.workers) + 1}"
        port, log = free_port(), self.tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "worker",
                cwd=ROOT,
                env={**self.env, "PIM_HEALTH_PORT": str(port)},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        worker = WorkerProcess(name, log, proc, port)
        self.workers.append(worker)
        await until_ready(name, proc, port, READY_TIMEOUT)
        self.say(f"{name} ready (pid {proc.pid})")
        return worker

    async def hold_lock(self, group_id: str, principal_id: str, access: AccessType = MEMBER) -> AsyncConnection:
        """Take the advisory lock of `Store.access_lock` for the target, in a transaction left open."""
        engine = create_async_engine(self.store.url)
        connection = await engine.connect()
        await connection.begin()
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{group_id}/{access.value}/{principal_id}"}
        )
        self.locks.append(connection)
        return connection

    async def waiting_for_access_locks(self) -> list[str]:
        async with self.locks[0].engine.connect() as connection:
            return await waiting_for_access_locks(connection)

    async def release_lock(self, connection: AsyncConnection) -> None:
        await connection.rollback()
        await connection.close()
        await connection.engine.dispose()
        self.locks.remove(connection)

    async def cleanup(self) -> None:
        for connection in list(self.locks):
            try:
                await self.release_lock(connection)
            except Exception:
                pass
        for worker in self.workers:
            if worker.proc.returncode is None:
                worker.proc.kill()
                await worker.proc.wait()
        await self.server.stop(signal.SIGTERM, 10)

    def dump(self) -> None:
        for worker in self.workers:
            print(
                f"\n--- {worker.name} (pid {worker.pid}, exit {worker.proc.returncode}) log tail ---\n{tail(worker.log)}",
                file=sys.stderr,
            )
        exit_code = self.server.proc.returncode if self.server.proc else None
        print(f"\n--- dev server (exit {exit_code}) log tail ---\n{tail(self.server.log)}", file=sys.stderr)


@pytest_asyncio.fixture
async def crash_store(pg_store):
    """The shared PostgreSQL store with the demo tenant and four more users eligible on grp-dev."""
    await seed_demo(pg_store)
    for user in ("erin", "frank", "gina", "hank"):
        await pg_store.add_principal(user, "user", user.capitalize())
        await pg_store.assign(DEV, user, kind="eligible", by="admin")
    return pg_store


@asynccontextmanager
async def crash_harness(store: Store, tmp_path: Path):
    """A dev server with its state on disk and a PimClient for it; everything the
    test starts is stopped at the end, and the logs are printed when it fails."""
    server = DevServer(tmp_path)
    harness = None
    try:
        client = await server.start()
        harness = Harness(tmp_path, store, server, PimClient(client, f"pim-crash-{uuid.uuid4().hex[:8]}", signer=TEST_SIGNER))
        harness.say(f"dev server on {server.address}, state in {server.db.name}")
        yield harness
        harness.say("done")
    except BaseException:
        if harness is not None:
            harness.dump()
        else:
            print(f"\n--- dev server log tail ---\n{tail(server.log)}", file=sys.stderr)
        raise
    finally:
        if harness is not None:
            await harness.cleanup()
        else:
            await server.stop(signal.SIGTERM, 10)


# --- requests and their state --------------------------------------------------


async def request_ops(h: Harness) -> str:
    """alice asks for membership of grp-ops (MFA, bob approves)."""
    code = current_code(await h.store.mfa_secret("alice"))
    return await h.pim.start(
        ActivationRequest(
            group_id=OPS,
            access=MEMBER,
            principal_id="alice",
            duration=timedelta(hours=2),
            justification=JUSTIFICATION,
            mfa=MfaEvidence(code=code),
        )
    )


async def request_dev(h: Harness, user: str) -> str:
    """`user` asks for membership of grp-dev (no approval, no MFA)."""
    return await h.pim.start(
        ActivationRequest(
            group_id=DEV, access=MEMBER, principal_id=user, duration=timedelta(hours=1), justification=JUSTIFICATION
        )
    )


async def status(h: Harness, rid: str) -> ActivationStatus | None:
    """The status query's answer, or None (no worker answered in time, the server is away)."""
    try:
        return await asyncio.wait_for(h.pim.status(rid), 10)
    except Exception:
        return None


async def wait_state(h: Harness, rid: str, state: State, timeout: float) -> ActivationStatus:
    started = time.monotonic()

    async def current() -> ActivationStatus | None:  # None: no answer
        now = await status(h, rid)
        if now is not None and now.state != state and now.state in FINAL:
            raise AssertionError(f"{rid} ended {now.state.value} ({now.end_reason}), expected {state.value}")
        return now

    reached = await eventually(
        current,
        until=lambda now: now is not None and now.state == state,
        what=f"{rid} to be {state.value}",
        timeout=timeout,
        interval=0.5,
    )
    h.say(f"{rid}: {state.value} after {time.monotonic() - started:.1f} s")
    return reached


async def visible_state(h: Harness, rid: str) -> str | None:
    """PimState as the server's visibility store holds it: readable with no worker running."""
    async for execution in h.pim.temporal.list_workflows(f"WorkflowId = '{rid}'"):
        return execution.typed_search_attributes.get(PIM_STATE)
    return None


async def signals_in_history(h: Harness, rid: str) -> list[str]:
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in h.pim.temporal.get_workflow_handle(rid).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def pending_activities(h: Harness, rid: str) -> list:
    description = await h.pim.temporal.get_workflow_handle(rid).describe()
    return list(description.raw_description.pending_activities)


async def wait_in_flight(h: Harness, rid: str, activity: str, timeout: float = 30) -> str:
    """Wait until an attempt of `activity` has started on a worker; returns that worker's identity."""

    async def started_on() -> list[str]:  # the identities of the workers running an attempt
        return [
            pending.last_worker_identity
            for pending in await pending_activities(h, rid)
            if pending.activity_type.name == activity and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ]

    [identity, *_] = await eventually(started_on, what=f"{rid}: {activity} in flight", timeout=timeout, interval=0.2)
    h.say(f"{rid}: {activity} in flight on {identity}")
    return identity


async def wait_quiet(h: Harness, rid: str, timeout: float = 20) -> None:
    """Wait until neither an activity nor a workflow task of the workflow is pending
    (audit lines written and reported; admission, a local activity, recorded). A
    signal that arrives while a workflow task is in flight stays out of the history
    until that task completes, or times out when its worker was killed."""

    async def pending() -> list[str]:  # what is still pending: activities, or a workflow task
        description = (await h.pim.temporal.get_workflow_handle(rid).describe()).raw_description
        activities = [p.activity_type.name for p in description.pending_activities]
        return activities or (["a workflow task"] if description.HasField("pending_workflow_task") else [])

    await eventually(pending, until=lambda left: not left, what=f"{rid}: nothing pending", timeout=timeout, interval=0.2)


async def pending_timers(h: Harness, rid: str) -> list[datetime]:
    """When the timers started and neither fired nor canceled will fire, from the history."""
    started, done = {}, set()
    async for event in h.pim.temporal.get_workflow_handle(rid).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            attributes = event.timer_started_event_attributes
            started[attributes.timer_id] = (
                event.event_time.ToDatetime(tzinfo=UTC) + attributes.start_to_fire_timeout.ToTimedelta()
            )
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            done.add(event.timer_fired_event_attributes.timer_id)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            done.add(event.timer_canceled_event_attributes.timer_id)
    return [fire_at for timer_id, fire_at in started.items() if timer_id not in done]


async def assert_expiry_timer(h: Harness, rid: str, expires_at: datetime) -> None:
    """The workflow holds exactly one pending timer: the expiry's first, which fires
    EXPIRY_LEAD before the activation's end (the second one then counts the rest)."""
    timers = await pending_timers(h, rid)
    assert len(timers) == 1, f"{rid}: {len(timers)} pending timers, one (the expiry) expected"
    fires_at = expires_at - EXPIRY_LEAD
    assert abs(timers[0] - fires_at) < timedelta(seconds=1), f"{rid}: timer fires at {timers[0]}, ends {expires_at}"


# --- what the store must hold ----------------------------------------------------


async def activation_grants(store: Store, group_id: str, principal_id: str) -> list[GrantRow]:
    async with store.sessions() as session:
        return list(
            await session.scalars(
                select(GrantRow).where(
                    GrantRow.group_id == group_id, GrantRow.principal_id == principal_id, GrantRow.source_kind == "activation"
                )
            )
        )


async def audit_actions(store: Store, rid: str, action: str) -> list:
    return [a for a in await store.audit(request_id=rid) if a.action == action]


async def assert_active_in_store(store: Store, rid: str, group_id: str, principal_id: str) -> None:
    assert await store.has_membership(group_id, MEMBER, principal_id), f"{rid}: active but no membership"
    grants = await activation_grants(store, group_id, principal_id)
    assert [g.source_id.split("#")[0] for g in grants] == [rid], f"{rid}: activation grants {grants} (one expected)"
    assert rid in await store.running_activations(group_id), f"{rid}: active without its claim"
    granted = await audit_actions(store, rid, "access_granted")
    assert len(granted) == 1, f"{rid}: {len(granted)} access_granted audit lines (one expected)"
    assert await audit_actions(store, rid, "activation_ended") == [], f"{rid}: active but recorded as ended"


async def assert_ended_in_store(store: Store, rid: str, group_id: str, principal_id: str, final: State) -> None:
    assert not await store.has_membership(group_id, MEMBER, principal_id), f"{rid}: membership left behind"
    assert await activation_grants(store, group_id, principal_id) == [], f"{rid}: activation grant left behind"
    assert await store.live_grants(group_id, MEMBER, datetime.now(UTC), principal_id=principal_id) == []
    assert rid not in await store.running_activations(group_id), f"{rid}: activation claim left behind"
    granted = await audit_actions(store, rid, "access_granted")
    assert len(granted) == 1, f"{rid}: {len(granted)} access_granted audit lines (one expected)"
    ended = await audit_actions(store, rid, "activation_ended")
    assert len(ended) == 1, f"{rid}: {len(ended)} activation_ended audit lines (one expected)"
    assert ended[0].details.get("state") == final.value and ended[0].details.get("revoked") == "true", ended[0].details


async def end_by_admin(h: Harness, rid: str, group_id: str, principal_id: str) -> ActivationStatus:
    await h.pim.deactivate(rid, "admin", "drill over")
    final = await asyncio.wait_for(h.pim.result(rid), END_TIMEOUT)
    assert final.state == State.deactivated, (final.state, final.end_reason)
    await assert_ended_in_store(h.store, rid, group_id, principal_id, State.deactivated)
    h.say(f"{rid}: deactivated, store clean")
    return final


# --- the scenarios -------------------------------------------------------------


@pytest.mark.slow
async def test_worker_killed_while_request_waits_for_approval(crash_store, tmp_path):
    async with crash_harness(crash_store, tmp_path) as h:
        first = await h.start_worker()
        rid = await request_ops(h)
        await wait_state(h, rid, State.pending_approval, 20)
        await wait_quiet(h, rid)
        assert not await h.store.has_membership(OPS, MEMBER, "alice")

        await first.kill()
        h.say(f"SIGKILL {first.name}")
        await h.pim.approve(rid, "bob", "failover drill approved")  # the server takes the signal with no worker
        assert await visible_state(h, rid) == State.pending_approval.value
        assert await signals_in_history(h, rid) == ["approve"], "the server did not record the approval"
        assert not await h.store.has_membership(OPS, MEMBER, "alice"), "granted with no worker running"

        second = await h.start_worker()
        active = await wait_state(h, rid, State.active, RETRY_TIMEOUT)
        assert [d.approver_id for d in active.stages[0].decisions] == ["bob"]
        await assert_active_in_store(h.store, rid, OPS, "alice")
        assert len(await audit_actions(h.store, rid, "request_approved")) == 1
        assert second.count('"event": "access granted"') == 1

        await end_by_admin(h, rid, OPS, "alice")
        assert await h.store.has_membership(OPS, MEMBER, "carol"), "carol's active assignment was touched"


@pytest.mark.slow
async def test_worker_killed_while_grant_in_flight_grants_once(crash_store, tmp_path):
    async with crash_harness(crash_store, tmp_path) as h:
        first = await h.start_worker()
        lock = await h.hold_lock(DEV, "erin")
        rid = await request_dev(h, "erin")
        # With the built-in directory the grant is a local activity: it waits for the
        # lock inside a workflow task on the first worker.
        waiting = await eventually(
            h.waiting_for_access_locks, what=f"{rid}: the grant waiting for its lock", timeout=30, interval=0.2
        )
        assert waiting == [f"pim {first.pid}@{socket.gethostname()}"], waiting

        await first.kill()
        h.say(f"SIGKILL {first.name} with the grant in flight")
        await h.release_lock(lock)
        # `activating` is a passing state: the request is listed under the one it came from.
        assert await visible_state(h, rid) == State.validating.value
        assert not await h.store.has_membership(DEV, MEMBER, "erin")

        second = await h.start_worker()
        await wait_state(h, rid, State.active, RETRY_TIMEOUT)
        await assert_active_in_store(h.store, rid, DEV, "erin")
        assert first.count('"event": "access granted"') == 0
        assert second.count('"event": "access granted"') == 1, "granted more than once"

        await end_by_admin(h, rid, DEV, "erin")


@pytest.mark.slow
async def test_worker_killed_while_revocation_in_flight_revokes_once(crash_store, tmp_path):
    async with crash_harness(crash_store, tmp_path) as h:
        first = await h.start_worker()
        rid = await request_dev(h, "erin")
        await wait_state(h, rid, State.active, 20)
        await wait_quiet(h, rid)
        await assert_active_in_store(h.store, rid, DEV, "erin")

        lock = await h.hold_lock(DEV, "erin")
        await h.pim.deactivate(rid, "admin", "drill over")
        identity = await wait_in_flight(h, rid, "close_activation")
        assert identity.startswith(f"{first.pid}@"), identity
        assert (await status(h, rid)).state == State.revoking

        await first.kill()
        h.say(f"SIGKILL {first.name} with the revocation in flight")
        # `revoking` is a passing state: the request is listed under the one it came from.
        assert await visible_state(h, rid) == State.active.value
        await h.release_lock(lock)
        assert await h.store.has_membership(DEV, MEMBER, "erin"), "revoked by a dead worker"

        second = await h.start_worker()
        # The lost attempt is retried 30 s after it started: until then the request shows revoking.
        waiting = await wait_state(h, rid, State.revoking, 20)
        assert waiting.end_reason and "deactivated by admin" in waiting.end_reason
        final = await asyncio.wait_for(h.pim.result(rid), RETRY_TIMEOUT)
        h.say(f"{rid}: {final.state.value}")
        assert final.state == State.deactivated, (final.state, final.end_reason)
        await assert_ended_in_store(h.store, rid, DEV, "erin", State.deactivated)
        assert first.count('"event": "access revoked"') == 0
        assert second.count('"event": "access revoked"') == 1, "revoked more than once"


@pytest.mark.slow
async def test_server_restart_keeps_activations_and_their_timers(crash_store, tmp_path):
    users = ["erin", "frank", "gina"]
    async with crash_harness(crash_store, tmp_path) as h:
        workers = [await h.start_worker(), await h.start_worker()]
        dev_ids = [await request_dev(h, u) for u in users]
        before = {rid: await wait_state(h, rid, State.active, 20) for rid in dev_ids}
        ops_id = await request_ops(h)
        await wait_state(h, ops_id, State.pending_approval, 20)
        for rid in [*dev_ids, ops_id]:
            await wait_quiet(h, rid)
        for rid, user in zip(dev_ids, users):
            await assert_active_in_store(h.store, rid, DEV, user)
            await assert_expiry_timer(h, rid, before[rid].expires_at)

        code = await h.server.stop(signal.SIGTERM)
        h.say(f"dev server stopped (exit {code})")
        assert code == 0, f"the dev server did not stop cleanly on SIGTERM (exit {code})"
        for rid, user in zip(dev_ids, users):  # access stays as it is while Temporal is away
            await assert_active_in_store(h.store, rid, DEV, user)
        await asyncio.sleep(2)  # the workers' polls fail meanwhile
        await h.server.start()  # the test's own client, like the workers', reconnects by itself
        h.say("dev server started again on the same port and state file")

        # The workers reconnect by themselves: the queries are answered and the state is as it was.
        for rid, user in zip(dev_ids, users):
            after = await wait_state(h, rid, State.active, 45)
            assert (after.granted_at, after.expires_at) == (before[rid].granted_at, before[rid].expires_at)
            await assert_expiry_timer(h, rid, before[rid].expires_at)
            await assert_active_in_store(h.store, rid, DEV, user)
        await wait_state(h, ops_id, State.pending_approval, 20)
        assert all(w.proc.returncode is None for w in workers), "a worker died with the server"

        # Work continues: an approval and a new request after the restart.
        await h.pim.approve(ops_id, "bob", "failover drill approved")
        await wait_state(h, ops_id, State.active, 30)
        await assert_active_in_store(h.store, ops_id, OPS, "alice")
        new_id = await request_dev(h, "hank")
        await wait_state(h, new_id, State.active, 30)
        await assert_active_in_store(h.store, new_id, DEV, "hank")

        # Every one ends right.
        ends = [(rid, DEV, user) for rid, user in zip([*dev_ids, new_id], [*users, "hank"])] + [(ops_id, OPS, "alice")]
        await asyncio.gather(*(end_by_admin(h, *end) for end in ends))
        assert await h.store.running_activations(DEV) == [] and await h.store.running_activations(OPS) == []
        assert await h.store.memberships(DEV, MEMBER) == [], "membership left behind"
        assert all(w.proc.returncode is None for w in workers)
