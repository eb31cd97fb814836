"""`pim dev` (embedded Temporal dev server + worker + SQLite store) and `pim worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from pim.cli.common import CliError, async_command, settings
from pim.identity.actors import ProofPolicy, configured_proof_policy
from pim.identity.proofs import ensure_dev_signing_key
from pim.identity.secrets import configured_cipher, ensure_dev_secret_key
from pim.identity.totp import ensure_dev_seal_key
from pim.notifications.channels import build_channels
from pim.operations import AdminContext
from pim.operations.assignments import start_missing_lifecycles
from pim.operations.seed import seed_demo
from pim.runtime.codec import data_converter
from pim.runtime.logging import configure_logging, get_logger
from pim.runtime.schedules import ensure_reconcile_schedule
from pim.runtime.settings import PimSettings
from pim.runtime.temporal import find_binary
from pim.runtime.tracing import TracingUnavailable, tracing_interceptors
from pim.store import Store
from pim.store.database import upgrade_async
from workflows.search_attributes import SEARCH_ATTRIBUTES

# The worker (and with it every workflow and activity) and the dev server are
# imported by `pim dev` and `pim worker` only: the other commands start faster.
if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment

log = get_logger("pim.dev")

BANNER = """
PIM dev is ready.
  Temporal:  {address} (namespace {namespace}, task queue {task_queue}){ui}{metrics}
  Store:     {db}
  Try, in another terminal (see README):{port_hint}
    pim request grp-ops --as alice --duration 2h --justification "INC-42 database failover" --mfa-code $(pim mfa code alice) --wait
Press Ctrl-C to stop; state is kept in {state_dir}.
"""


@async_command
async def dev(
    seed: Optional[str] = typer.Option(None, help="load a data set: demo"),
    db: Optional[Path] = typer.Option(None, help="SQLite file for the store (default: PIM_DATABASE_URL or .pim/pim.db)"),
    port: int = typer.Option(7233, help="Temporal front-end port"),
    ui: bool = typer.Option(False, "--ui", help="also serve the Temporal Web UI"),
    metrics_port: Optional[int] = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (default: PIM_METRICS_PORT; 0: off)",
    ),
) -> None:
    """Run the embedded system: Temporal dev server, worker and store."""
    from worker.telemetry import MetricsUnavailable

    if seed not in (None, "demo"):
        raise CliError(f"--seed: unknown data set {seed!r} (known: demo)", 2)
    _require_free_port(port)
    config = settings()
    if db is not None:
        config.database_url = f"sqlite+aiosqlite:///{db.resolve()}"
    if metrics_port is not None:
        config.metrics_port = metrics_port
    configure_logging(config.log_format, config.log_level)
    try:
        await _run_dev(config, seed, port, ui)
    except (MetricsUnavailable, TracingUnavailable) as error:
        raise CliError(str(error), 1) from None


def _require_free_port(port: int) -> None:
    """The dev server would otherwise die quietly while we talk to whatever holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no conflict
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise CliError(f"--port: {port} is already in use (another `pim dev`?); stop it or pick another port", 1) from None


async def _run_dev(config: PimSettings, seed: str | None, port: int, ui: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Development state (the store, Temporal's database, the keys) is readable by its owner only.
    os.umask(0o077)
    state_dir = Path(".pim")
    state_dir.mkdir(exist_ok=True)
    state_dir.chmod(0o700)
    for existing in state_dir.iterdir():
        if existing.is_file():
            existing.chmod(0o600)
    # The development keys, in .pim/ (mode 0600): the worker below and every `pim`
    # command run from here use them (docs/security.md).
    if not config.mfa_seal_key:
        ensure_dev_seal_key()  # clients seal MFA codes with it
    signing_key = ensure_dev_signing_key()  # the local CLI proves its actors with it
    secrets = configured_cipher(config) or ensure_dev_secret_key()  # TOTP secrets at rest
    proofs = configured_proof_policy(config, also_trust=[signing_key.trusted()])
    await upgrade_async(config.database_url)
    store = Store.open(config.database_url, secrets=secrets)
    if await store.seal_plain_mfa_secrets():
        log.info("TOTP secrets written before encryption at rest are now encrypted")
    if seed == "demo":
        loaded = await seed_demo(store)
        log.info("demo tenant " + ("loaded" if loaded else "already present"))
    env = await _start_dev_server(config, port, ui, state_dir)
    try:
        await _serve(env, store, config, port, ui, state_dir, stop, proofs)
    finally:
        await env.shutdown()
        await store.close()


async def _start_dev_server(config: PimSettings, port: int, ui: bool, state_dir: Path) -> WorkflowEnvironment:
    from temporalio.testing import WorkflowEnvironment

    from worker.telemetry import metrics_runtime

    # Metrics and tracing before the server: the environment's client is made with them.
    runtime = metrics_runtime(config.metrics_port, "127.0.0.1") if config.metrics_port else None
    return await WorkflowEnvironment.start_local(
        runtime=runtime,
        interceptors=tracing_interceptors(config.otel),
        namespace=config.namespace,
        port=port,
        ui=ui,
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_existing_path=find_binary("temporal"),
        dev_server_database_filename=str(state_dir / "temporal.db"),
        data_converter=data_converter(config),
        dev_server_log_level="error",
    )


async def _serve(
    env: WorkflowEnvironment,
    store: Store,
    config: PimSettings,
    port: int,
    ui: bool,
    state_dir: Path,
    stop: asyncio.Event,
    proofs: ProofPolicy,
) -> None:
    """The worker on the dev server until Ctrl-C (or SIGTERM)."""
    from worker.app import serving

    async with serving(
        env.client,
        store,
        config.task_queue,
        proofs=proofs,
        channels=build_channels(config),
        max_cached_workflows=config.max_cached_workflows,
        backstop_every=config.reconcile_interval,
        backstop_grace=config.backstop_grace,
    ):
        started = await start_missing_lifecycles(AdminContext(store, "seed", temporal=env.client, task_queue=config.task_queue))
        if started:
            log.info("assignment lifecycles started", assignments=started)
        await ensure_reconcile_schedule(env.client, config.task_queue, config.reconcile_interval)
        print(
            BANNER.format(
                address=f"localhost:{port}",
                namespace=config.namespace,
                task_queue=config.task_queue,
                port_hint="" if port == 7233 else f"\n    export PIM_TEMPORAL_ADDRESS=localhost:{port}",
                ui=f"\n  Web UI:    http://localhost:{port + 1000}" if ui else "",
                metrics=(f"\n  Metrics:   http://127.0.0.1:{config.metrics_port}/metrics" if config.metrics_port else ""),
                db=config.database_url,
                state_dir=state_dir.resolve(),
            ),
            flush=True,
        )
        await stop.wait()
        log.info("stopping")


@async_command
async def worker(
    metrics_port: Optional[int] = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="serve Prometheus metrics on 0.0.0.0:PORT/metrics (default: PIM_METRICS_PORT; 0: off)",
    ),
) -> None:
    """Run a worker against an existing Temporal server and database (PIM_* settings)."""
    from worker.app import run_worker
    from worker.telemetry import MetricsUnavailable

    config = settings()
    if metrics_port is not None:
        config.metrics_port = metrics_port
    configure_logging(config.log_format, config.log_level)
    try:
        await run_worker(config)
    except (MetricsUnavailable, TracingUnavailable, ValueError) as error:  # ValueError: a setting is wrong or missing
        raise CliError(str(error), 1) from None
