"""The worker: every workflow and activity of the product on one task queue."""

from __future__ import annotations

import asyncio
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any, AsyncIterator, Sequence

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.registry import build_activities
from pim.directories import build_directory
from pim.directories.faults import FaultyDirectory
from pim.directories.interface import Directory
from pim.directories.store_directory import StoreDirectory
from pim.identity.actors import ProofPolicy, configured_proof_policy
from pim.identity.secrets import configured_cipher
from pim.notifications.channels import build_channels
from pim.notifications.channels.log import LogChannel
from pim.notifications.dispatcher import dispatching
from pim.notifications.model import Channel
from pim.runtime import metrics
from pim.runtime.health import Check, check_store
from pim.runtime.logging import configure_logging, get_logger
from pim.runtime.schedules import ensure_reconcile_schedule, keep_the_backstop_running
from pim.runtime.settings import PimSettings, load_settings
from pim.runtime.temporal import connect_with
from pim.store import Store
from worker.health import HealthServer
from worker.log_context import LogContextInterceptor
from worker.telemetry import metrics_runtime
from workflows.registry import WORKFLOWS

log = get_logger("pim.worker")
# The setting's default (1,000, Temporal's own): each cached activation costs about
# 75 KB of worker memory (bench/reported/scale_10000_cache10000_stopped.txt), so
# 10,000 would take the worker past a gigabyte. Evicted ones are rebuilt from their
# (short) history when their timer fires.
MAX_CACHED_WORKFLOWS: int = PimSettings.model_fields["max_cached_workflows"].default
# The sandbox re-imports a workflow's modules for every run it starts unless they
# are passed through: our workflow modules keep no state at module level (constants
# only), so sharing them is safe, and it spares each activation an import (a third
# of the worker's time when activations start in bulk). The sandbox's checks on
# what workflow code calls (no I/O, no wall clock) still apply.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows"))
# Workflow code is pure Python and never waits on I/O, so threads beyond a few
# only contend for the GIL with the event loop, which runs the activities and
# local activities. The SDK's default, a thread per workflow task (up to 500),
# let a hundred expiring workflows starve the loop: their revocations' activities
# began up to a second after Temporal had handed them over. One pool for the
# process, shared by its workers (tests start many).
WORKFLOW_THREADS = 4
_workflow_threads: ThreadPoolExecutor | None = None


def workflow_threads() -> ThreadPoolExecutor:
    global _workflow_threads
    if _workflow_threads is None:
        _workflow_threads = ThreadPoolExecutor(max_workers=WORKFLOW_THREADS, thread_name_prefix="pim-workflow")
    return _workflow_threads


def build_worker(
    client: Client,
    store: Store,
    task_queue: str,
    *,
    proofs: ProofPolicy,
    directory: Directory | None = None,
    directory_faults: str | None = None,
    max_cached_workflows: int = MAX_CACHED_WORKFLOWS,
    backstop_grace: timedelta = timedelta(seconds=60),
) -> Worker:
    if directory_faults:  # tests only (PIM_DIRECTORY_FAULTS): grants and revokes misbehave on purpose
        directory = FaultyDirectory(directory or StoreDirectory(store), directory_faults)
        log.warning(
            "DIRECTORY FAULTS INJECTED: grants and revokes will fail on purpose; never use this in production",
            plan=directory_faults,
            task_queue=task_queue,
        )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        workflow_runner=WORKFLOW_RUNNER,
        workflow_task_executor=workflow_threads(),
        activities=build_activities(store, proofs, directory, backstop_grace),
        # Activity log lines carry the workflow, the attempt and the request (worker/log_context.py);
        # tracing, when on, comes with the client's interceptors.
        interceptors=[LogContextInterceptor()],
        graceful_shutdown_timeout=timedelta(seconds=30),
        # Workflows evicted from the cache are rebuilt from their history when their
        # timer fires: with more activations open than this, expiry gets slower.
        max_cached_workflows=max_cached_workflows,
    )


@asynccontextmanager
async def serving(
    client: Client,
    store: Store,
    task_queue: str,
    *,
    channels: Sequence[Channel] | None = None,
    backstop_every: timedelta | None = None,
    **options: Any,
) -> AsyncIterator[Worker]:
    """The worker and the notification dispatcher of one process, running for the
    duration of the block (tests, `pim dev`, `pim worker`). With `backstop_every`,
    the worker also runs the reconciler itself whenever the schedule is paused or
    missing (a production worker; tests start their own reconciles)."""
    # The dispatcher runs outside any activity: its metrics go to the client's runtime.
    meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
    async with dispatching(store, channels if channels is not None else [LogChannel()], meter=meter):
        async with build_worker(client, store, task_queue, **options) as worker:
            watch = None
            if backstop_every is not None:
                missed = partial(metrics.backstop_ran_without_schedule, meter)
                watch = asyncio.create_task(keep_the_backstop_running(client, task_queue, backstop_every, missed))
            try:
                yield worker
            finally:
                if watch is not None:
                    watch.cancel()
                    await asyncio.gather(watch, return_exceptions=True)


async def run_worker(settings: PimSettings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then drain: running activities get
    up to 30 s to finish before the worker exits."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    proofs = configured_proof_policy(settings)  # refuses to start without a trusted issuer
    runtime = metrics_runtime(settings.metrics_port) if settings.metrics_port else None
    client = await connect_with(settings, runtime=runtime, worker=True)
    await ensure_reconcile_schedule(client, settings.task_queue, settings.reconcile_interval)
    store = Store.open(settings.database_url, secrets=configured_cipher(settings))
    worker = serving(
        client,
        store,
        settings.task_queue,
        channels=build_channels(settings),
        proofs=proofs,
        backstop_every=settings.reconcile_interval,
        backstop_grace=settings.backstop_grace,
        directory=build_directory(settings, store),
        directory_faults=settings.directory_faults,
        max_cached_workflows=settings.max_cached_workflows,
    )
    health = HealthServer(settings.health_port, lambda: _store_only(store)) if settings.health_port else None
    if health:
        await health.start()
    log.info(
        "worker started",
        task_queue=settings.task_queue,
        namespace=client.namespace,
        temporal=client.service_client.config.target_host,
        health_port=settings.health_port or None,
        metrics_port=settings.metrics_port or None,
        tracing=settings.otel,
    )
    try:
        async with worker:
            if health:
                health.ready = True
            await stop.wait()
            if health:
                health.ready = False
            log.info("worker draining: no new tasks; running activities get up to 30 s")
    finally:
        if health:
            await health.stop()
        await store.close()
        log.info("worker stopped")


async def _store_only(store: Store) -> list[Check]:
    return [await check_store(store)]


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        asyncio.run(run_worker(settings))
    except ValueError as error:  # a setting is wrong or missing: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
