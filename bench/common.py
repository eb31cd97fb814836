"""Shared harness of the benchmarks (issue 6).

One process holds everything, as in `pim dev`: an in-memory Temporal dev server
(started with `WorkflowEnvironment.start_local`), a migrated SQLite store in a
temporary directory seeded with eligible users enrolled for TOTP, the product's
worker and notification dispatcher (worker.app.serving) and, on a second task queue, a worker for the
"bare" floor workflow: grant activity (insert a membership row), durable timer,
revoke activity (delete it). That is the irreducible work any activation does;
the ratio product/bare says what the product costs on top of Temporal.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.bare import BARE_GRANTED, BARE_GROUP, BARE_REVOKED, BareActivities, BareGrant, BareInput  # noqa: F401
from bench.postgres import FreshPostgres
from bench.report import REPORTED, RESULTS, machine, save, store_kind, table  # noqa: F401
from pim.domain.models import AccessType
from pim.identity.secrets import SecretCipher

TASK_QUEUE = "pim-bench"
BARE_TASK_QUEUE = "bare-bench"
GROUP = "grp-bench"
APPROVAL_GROUP = "grp-bench-approval"

ADMIN = "bench-admin"
APPROVER = "bench-approver"
JUSTIFICATION = "benchmark run: measuring activation latency"
MEMBER = AccessType.member


# The bare floor workflow lives in bench/bare.py: the workflow sandbox re-imports
# its module for every run, and this one is heavy (a fair floor needs a light one).


# --- the environment ---------------------------------------------------------


@dataclass
class Bench:
    env: WorkflowEnvironment
    client: Client
    store: object
    pim: object  # PimClient
    users: list[str]
    approval_users: list[str]
    secrets: dict[str, str]
    workdir: Path
    notes: dict = field(default_factory=dict)
    _next_user: int = 0
    _next_approval_user: int = 0

    def take_users(self, n: int) -> list[str]:
        """Fresh users (a TOTP step is accepted once per user: one request each)."""
        chosen = self.users[self._next_user : self._next_user + n]
        if len(chosen) < n:
            raise RuntimeError(f"only {len(self.users) - self._next_user} seeded users left, {n} wanted")
        self._next_user += n
        return chosen

    def take_approval_users(self, n: int) -> list[str]:
        chosen = self.approval_users[self._next_approval_user : self._next_approval_user + n]
        if len(chosen) < n:
            raise RuntimeError("not enough seeded users on the approval group")
        self._next_approval_user += n
        return chosen

    def request(
        self, user: str, group: str = GROUP, duration: timedelta = timedelta(minutes=30), start_at: datetime | None = None
    ):
        from pim.domain.models import ActivationRequest, MfaEvidence
        from pim.identity.totp import current_code

        return ActivationRequest(
            group_id=group,
            access=MEMBER,
            principal_id=user,
            duration=duration,
            justification=JUSTIFICATION,
            mfa=MfaEvidence(code=current_code(self.secrets[user])),
            start_at=start_at,
        )

    def bare_handle(self, key: str):
        return self.client.get_workflow_handle(f"bare/{key}")

    async def start_bare(
        self, key: str, duration_seconds: float, start_at: datetime | None = None, approval: bool = False
    ) -> None:
        await self.client.start_workflow(
            BareGrant.run,
            BareInput(key=key, duration_seconds=duration_seconds, start_at=start_at, approval=approval),
            id=f"bare/{key}",
            task_queue=BARE_TASK_QUEUE,
        )

    def server_pid(self) -> int | None:
        """The dev server is a child process of this one (started by the SDK)."""
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if ppid == me and "temporal" in cmd:
                return int(entry.name)
        return None


async def _seed(store, n_users: int, n_approval_users: int) -> tuple[list[str], list[str], dict[str, str]]:
    from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
    from pim.identity.totp import new_secret

    at = datetime.now(UTC)
    await store.add_principal(ADMIN, "user", "Bench Admin", ["Global Administrator"])
    await store.add_principal(APPROVER, "user", "Bench Approver", [])
    await store.enroll_mfa(APPROVER, new_secret(), at)
    await store.onboard_group(GROUP, "security", by=ADMIN, display_name="Bench")
    await store.set_policy(
        GROUP,
        MEMBER,
        Policy(
            activation=ActivationSettings(
                approval=[], require_mfa=True, require_justification=True, max_duration=timedelta(hours=8)
            )
        ),
        by=ADMIN,
    )
    await store.onboard_group(APPROVAL_GROUP, "security", by=ADMIN, display_name="Bench with approval")
    await store.set_policy(
        APPROVAL_GROUP,
        MEMBER,
        Policy(
            activation=ActivationSettings(
                approval=[ApprovalStage(approvers=[APPROVER], required=1)],
                require_mfa=True,
                require_justification=True,
                max_duration=timedelta(hours=8),
            )
        ),
        by=ADMIN,
    )
    users = [f"u{i:05d}" for i in range(n_users)]
    approval_users = [f"a{i:05d}" for i in range(n_approval_users)]
    secrets: dict[str, str] = {}
    for user in users + approval_users:
        secrets[user] = new_secret()
        await store.add_principal(user, "user", user)
        await store.enroll_mfa(user, secrets[user], at)
        group = GROUP if user.startswith("u") else APPROVAL_GROUP
        await store.assign(
            group,
            user,
            kind="eligible",
            starts_at=at,
            ends_at=at + timedelta(days=365),
            justification="benchmark eligibility",
            by=ADMIN,
        )
    return users, approval_users, secrets


@asynccontextmanager
async def bench_env(n_users: int, n_approval_users: int = 0, *, max_concurrent_workflow_tasks: int | None = None):
    """Dev server + seeded store + product worker + bare worker, all in this process."""
    from pim.client import PimClient
    from pim.identity import totp as mfa
    from pim.identity.actors import ProofPolicy
    from pim.identity.proofs import SigningKey, TrustedKeys
    from pim.notifications.channels.log import LogChannel
    from pim.runtime.logging import configure_logging
    from pim.runtime.settings import load_settings
    from pim.runtime.temporal import find_binary
    from pim.store import Store
    from pim.store.database import upgrade_async
    from worker.app import build_worker, serving
    from workflows.search_attributes import SEARCH_ATTRIBUTES

    # MFA codes are sealed by the client, as in production (pim/mfa.py).
    os.environ.setdefault("PIM_MFA_SEAL_KEY", base64.b64encode(os.urandom(32)).decode())
    seal_key = mfa.seal_key(load_settings())
    # Production logs JSON at INFO; the benchmark keeps warnings only so that a
    # terminal does not become the bottleneck (noted in the results).
    configure_logging("json", os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    logging.getLogger("temporalio").setLevel(logging.ERROR)

    workdir = Path(tempfile.mkdtemp(prefix="pim-bench-"))
    # BENCH_POSTGRES_URL (an admin URL, e.g. postgresql+asyncpg://postgres@127.0.0.1/postgres):
    # the store in a fresh PostgreSQL database, dropped afterwards; else SQLite.
    postgres = FreshPostgres(os.environ["BENCH_POSTGRES_URL"]) if os.environ.get("BENCH_POSTGRES_URL") else None
    url = await postgres.create() if postgres else f"sqlite+aiosqlite:///{workdir / 'pim.db'}"
    began = time.monotonic()
    await upgrade_async(url)
    store = Store.open(url, secrets=SecretCipher([("bench", os.urandom(32))]))
    users, approval_users, secrets = await _seed(store, n_users, n_approval_users)
    seeded = time.monotonic() - began
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        search_attributes=list(SEARCH_ATTRIBUTES),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        # The product as `pim worker` runs it: worker and notification dispatcher.
        # BENCH_DISPATCH=0: the worker alone, to measure what the dispatcher costs.
        cache = load_settings().max_cached_workflows  # PIM_MAX_CACHED_WORKFLOWS
        # The benchmark is the front end: it proves its actors, and the worker trusts it (docs/security.md).
        signer = SigningKey.generate("pim-bench", "bench-1")
        proofs = ProofPolicy(TrustedKeys([signer.trusted()]))
        product = (
            serving(env.client, store, TASK_QUEUE, channels=[LogChannel()], max_cached_workflows=cache, proofs=proofs)
            if os.environ.get("BENCH_DISPATCH", "1") == "1"
            else build_worker(env.client, store, TASK_QUEUE, max_cached_workflows=cache, proofs=proofs)
        )
        bare = Worker(
            env.client,
            task_queue=BARE_TASK_QUEUE,
            workflows=[BareGrant],  # passed through like ours
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules("bench.bare")
            ),
            activities=[BareActivities(store).bare_grant, BareActivities(store).bare_revoke],
        )
        async with product, bare:
            bench = Bench(
                env=env,
                client=env.client,
                store=store,
                pim=PimClient(env.client, TASK_QUEUE, seal_key, signer),
                users=users,
                approval_users=approval_users,
                secrets=secrets,
                workdir=workdir,
            )
            bench.notes["seed_seconds"] = round(seeded, 1)
            yield bench
    finally:
        await env.shutdown()
        await store.close()
        if postgres:
            await postgres.drop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- measuring ---------------------------------------------------------------


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    return {
        "n": len(ordered),
        "p50": round(pct(50), 4),
        "p95": round(pct(95), 4),
        "p99": round(pct(99), 4),
        "max": round(ordered[-1], 4),
        "mean": round(statistics.fmean(ordered), 4),
    }


async def wait_state(pim, request_id: str, states: set[str], timeout: float = 120.0, interval: float = 0.01) -> tuple[str, float]:
    """Poll the status query until the state is one of `states`; (state, wall time seen)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await pim.status(request_id)
        if status.state.value in states:
            return status.state.value, time.time()
        if status.state.terminal:
            raise RuntimeError(f"{request_id} ended {status.state.value}: {status.end_reason} {status.violations}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{request_id} still {status.state.value} after {timeout} s")
        await asyncio.sleep(interval)


async def wait_bare_state(handle, states: set[str], timeout: float = 120.0, interval: float = 0.01) -> float:
    """The bare workflow's `wait_state`: poll its `state` query; the wall time it was seen."""
    deadline = time.monotonic() + timeout
    while (await handle.query("state", result_type=str)) not in states:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.id} not {states} after {timeout} s")
        await asyncio.sleep(interval)
    return time.time()


async def gather_limited(coros, limit: int):
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def count_history(client: Client, workflow_id: str) -> dict:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds: dict[str, int] = {}
    for event in history.events:
        name = type(event).__name__
        from temporalio.api.enums.v1 import EventType

        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        kinds[name] = kinds.get(name, 0) + 1
    return {"events": len(history.events), "by_type": dict(sorted(kinds.items(), key=lambda kv: -kv[1]))}


def rss_mb(pid: int | None = None) -> float | None:
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main(coro_factory) -> None:
    """Run a benchmark and leave with its status (the SDK's threads can crash the
    interpreter at shutdown: TEMPORAL-NOTES.md)."""
    from pim.runtime.process import hard_exit

    code = 0
    try:
        asyncio.run(coro_factory())
    except KeyboardInterrupt:
        code = 130
    except Exception:
        import traceback

        traceback.print_exc()
        code = 1
    hard_exit(code)


def arg(name: str, default: int) -> int:
    """`--name value` from the command line, else BENCH_<NAME>, else the default."""
    argv = sys.argv[1:]
    flag = f"--{name.replace('_', '-')}"
    if flag in argv:
        return int(argv[argv.index(flag) + 1])
    return int(os.environ.get(f"BENCH_{name.upper()}", default))
