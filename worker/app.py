"""The worker: every workflow and activity of the product on one task queue."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from pim.directory import Directory, StoreDirectory
from pim.faults import FaultyDirectory
from pim.health import check_store
from pim.logging import configure_logging, get_logger
from pim.schedules import ensure_reconcile_schedule
from pim.notify import Notifier
from pim.settings import PimSettings, load_settings
from pim.store import Store
from pim.temporal import connect_with
from worker.health import HealthServer
from workflows import WORKFLOWS

log = get_logger("pim.worker")


def build_worker(client: Client, store: Store, task_queue: str, *, directory: Directory | None = None,
                 notifier: Notifier | None = None, directory_faults: str | None = None) -> Worker:
    if directory_faults:  # tests only (PIM_DIRECTORY_FAULTS): grants and revokes misbehave on purpose
        directory = FaultyDirectory(directory or StoreDirectory(store), directory_faults)
        log.warning("DIRECTORY FAULTS INJECTED: grants and revokes will fail on purpose; never use this in production",
                    plan=directory_faults, task_queue=task_queue)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(store, directory, notifier),
        graceful_shutdown_timeout=timedelta(seconds=30),
    )


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
    client = await connect_with(settings)
    await ensure_reconcile_schedule(client, settings.task_queue, settings.reconcile_interval)
    store = Store.open(settings.database_url)
    worker = build_worker(client, store, settings.task_queue, directory_faults=settings.directory_faults)
    health = HealthServer(settings.health_port, lambda: _store_only(store)) if settings.health_port else None
    if health:
        await health.start()
    log.info("worker started", task_queue=settings.task_queue, namespace=client.namespace,
             temporal=client.service_client.config.target_host, health_port=settings.health_port or None)
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


async def _store_only(store: Store):
    return [await check_store(store)]


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run_worker(settings))
