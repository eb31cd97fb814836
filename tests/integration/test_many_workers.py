"""Many workers (issue 4, item 3): two real worker processes on one task queue,
against the dev server and PostgreSQL. One is killed with SIGKILL while it holds
grants in flight; every activation still ends active with exactly one grant,
every deactivation is carried out by the survivor (no missed revocation), and
the survivor drains and exits 0 on SIGTERM.

To make "in flight" certain rather than a matter of timing, the test holds the
PostgreSQL advisory locks that `Store.access_lock` takes for the first half of
the users: their `grant_access` activities start on the workers and wait there.
The worker holding the most of them is the one killed; its attempts are retried
on the survivor once their start-to-close timeout (30 s) has passed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from pim.client import PimClient
from pim.domain.models import AccessType, ActivationRequest, State
from pim.operations.seed import seed_demo
from pim.store import Store
from pim.store.tables import GrantRow
from tests.conftest import KEY_SETTINGS, TEST_SIGNER
from tests.integration.processes import free_port, until_ready
from tests.polling import eventually
from tests.postgres import waiting_for_access_locks

ROOT = Path(__file__).resolve().parents[2]
GROUP = "grp-dev"
MEMBER = AccessType.member
USERS = [f"user{n:02d}" for n in range(1, 21)]
FIRST, SECOND = USERS[:10], USERS[10:]
JUSTIFICATION = "deploy release 4.2"
READY_TIMEOUT = 30
ACTIVE_TIMEOUT = 90  # a grant in flight on the killed worker is retried after its 30 s start-to-close timeout
EXIT_TIMEOUT = 40


class WorkerProcess:
    def __init__(self, name: str, log: Path, proc: asyncio.subprocess.Process, port: int) -> None:
        self.name, self.log, self.proc, self.port = name, log, proc, port

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"

    def count(self, needle: str) -> int:
        try:
            return self.log.read_text(errors="replace").count(needle)
        except OSError:
            return 0


async def start_worker(name: str, tmp_path: Path, env: dict[str, str]) -> WorkerProcess:
    port = free_port()
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            cwd=ROOT,
            env={**env, "PIM_HEALTH_PORT": str(port)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return WorkerProcess(name, log, proc, port)


async def wait_ready(worker: WorkerProcess) -> None:
    await until_ready(f"worker {worker.name}", worker.proc, worker.port, READY_TIMEOUT)


async def grants_in_flight(url: str) -> dict[str, int]:
    """Worker pid -> how many grants it runs that wait for their access lock."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            waiting = await waiting_for_access_locks(connection)
    finally:
        await engine.dispose()
    counts: dict[str, int] = {}
    for name in waiting:
        pid = name.removeprefix("pim ").split("@")[0]
        counts[pid] = counts.get(pid, 0) + 1
    return counts


async def states(pim: PimClient, request_ids: list[str]) -> dict[str, State | str]:
    async def one(request_id: str):
        try:
            return (await asyncio.wait_for(pim.status(request_id), 10)).state
        except Exception as error:  # a query routed to the dead worker's sticky queue, a timeout: ask again
            return f"unanswered ({type(error).__name__})"

    return dict(zip(request_ids, await asyncio.gather(*(one(r) for r in request_ids))))


async def wait_all(pim: PimClient, request_ids: list[str], state: State, timeout: float) -> float:
    """Wait until every request shows `state`; returns the seconds that took."""
    started = time.monotonic()

    async def stuck() -> dict[str, State | str]:  # the requests not there yet
        return {r: s for r, s in (await states(pim, request_ids)).items() if s != state}

    await eventually(stuck, until=lambda left: not left, what=f"every request to be {state.value}", timeout=timeout, interval=0.5)
    return time.monotonic() - started


async def activation_grants(store: Store) -> list[GrantRow]:
    async with store.sessions() as session:
        return list(
            await session.scalars(select(GrantRow).where(GrantRow.group_id == GROUP, GrantRow.source_kind == "activation"))
        )


async def test_two_workers_one_killed_every_activation_granted_once_and_revoked(dev_env, pg_store, tmp_path):
    store = pg_store
    await seed_demo(store)
    for user in USERS:
        await store.add_principal(user, "user", user.capitalize())
        await store.assign(GROUP, user, kind="eligible", by="admin")

    task_queue = f"pim-many-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        **KEY_SETTINGS,
        "PIM_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "PIM_NAMESPACE": dev_env.client.namespace,
        "PIM_TASK_QUEUE": task_queue,
        "PIM_DATABASE_URL": store.url,
        "PIM_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }
    pim = PimClient(dev_env.client, task_queue, signer=TEST_SIGNER)
    workers: list[WorkerProcess] = []
    lock_engine = create_async_engine(store.url)
    locks = None
    began = time.monotonic()

    def request(user: str) -> ActivationRequest:
        return ActivationRequest(
            group_id=GROUP, access=MEMBER, principal_id=user, duration=timedelta(hours=1), justification=JUSTIFICATION
        )

    try:
        for name in ("worker-a", "worker-b"):
            workers.append(await start_worker(name, tmp_path, env))
        await asyncio.gather(*(wait_ready(w) for w in workers))
        print(f"\nworkers ready: {[(w.name, w.pid) for w in workers]} after {time.monotonic() - began:.1f} s")

        # Hold the access locks of the first half: their grants start on the workers and wait.
        locks = await lock_engine.connect()
        await locks.begin()
        for user in FIRST:
            await locks.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{GROUP}/{MEMBER.value}/{user}"}
            )

        first_ids = list(await asyncio.gather(*(pim.start(request(u)) for u in FIRST)))
        # A grant with the built-in directory is a local activity: it waits for its lock
        # inside a workflow task, on the worker that runs that task.
        holders = await eventually(
            lambda: grants_in_flight(store.url),
            until=lambda held: sum(held.values()) >= len(first_ids),
            what="every held grant to be in flight",
            timeout=30,
            interval=0.2,
        )
        by_worker = {w.pid: holders.get(str(w.pid), 0) for w in workers}
        victim = max(workers, key=lambda w: by_worker[w.pid])
        survivor = next(w for w in workers if w is not victim)
        assert by_worker[victim.pid], f"no grant in flight on either worker: {holders}"
        print(f"grants in flight: { ({w.name: by_worker[w.pid] for w in workers}) }; SIGKILL {victim.name} (pid {victim.pid})")
        victim.proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(victim.proc.wait(), 10) == -signal.SIGKILL

        # The second half starts with one worker gone; then the held grants may proceed.
        second_ids = list(await asyncio.gather(*(pim.start(request(u)) for u in SECOND)))
        await locks.rollback()
        await locks.close()
        locks = None
        request_ids = first_ids + second_ids

        took = await wait_all(pim, request_ids, State.active, ACTIVE_TIMEOUT)
        print(f"all {len(request_ids)} active {took:.1f} s after the kill")
        memberships = await store.memberships(GROUP, MEMBER)
        assert sorted(m.principal_id for m in memberships) == USERS  # exactly one each, nobody else
        grants = await activation_grants(store)
        assert sorted(g.principal_id for g in grants) == USERS, "one activation grant per user, no double grant"
        for request_id in request_ids:
            granted = [a for a in await store.audit(request_id=request_id) if a.action == "access_granted"]
            assert len(granted) == 1, f"{request_id}: {len(granted)} access_granted audit lines"
        assert sorted(await store.running_activations(GROUP)) == sorted(request_ids)

        # Deactivate every one: the survivor revokes them all.
        await asyncio.gather(*(pim.deactivate(r, "admin", "release deployed") for r in request_ids))
        finals = await asyncio.wait_for(asyncio.gather(*(pim.result(r) for r in request_ids)), 60)
        assert {f.request_id: f.state for f in finals} == {r: State.deactivated for r in request_ids}
        assert await store.memberships(GROUP, MEMBER) == [], "membership left behind: a missed revocation"
        assert await activation_grants(store) == [], "activation grant left behind"
        assert await store.live_grants(GROUP, MEMBER, datetime.now(UTC)) == []
        assert await store.running_activations(GROUP) == [], "activation claim left behind"
        for request_id in request_ids:
            ended = [a for a in await store.audit(request_id=request_id) if a.action == "activation_ended"]
            assert len(ended) == 1 and ended[0].details.get("revoked") == "true", (request_id, ended)
        chain = await store.verify_audit()  # two processes appended, one killed mid-way: still one chain
        assert chain.ok and chain.rows > 2 * len(request_ids), chain.problem
        granted_by = {w.name: w.count('"event": "access granted"') for w in (victim, survivor)}
        print(f"all deactivated and revoked; grants carried out by {granted_by}")

        # Graceful drain: SIGTERM, then exit code 0.
        survivor.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(survivor.proc.wait(), EXIT_TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{survivor.name} still running {EXIT_TIMEOUT} s after SIGTERM") from None
        assert code == 0, (
            f"{survivor.name} exited with {code} after SIGTERM (negative: killed by that signal, "
            "e.g. -11 SIGSEGV or -6 SIGABRT at interpreter shutdown)"
        )
        assert survivor.count("worker stopped") == 1
        print(f"{survivor.name} drained and exited 0; test took {time.monotonic() - began:.1f} s")
    except BaseException:
        for w in workers:
            print(f"\n--- {w.name} (pid {w.pid}, exit {w.proc.returncode}) log tail ---\n{w.tail()}", file=sys.stderr)
        raise
    finally:
        if locks is not None:
            await locks.close()
        await lock_engine.dispose()
        for w in workers:
            if w.proc.returncode is None:
                w.proc.kill()
                await w.proc.wait()
