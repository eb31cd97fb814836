"""`pim dev` (embedded Temporal dev server + worker + SQLite store) and `pim worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, AsyncIterator, Optional

import typer

from pim.cli.common import CliError, async_command, settings, store_location
from pim.identity.actors import ProofPolicy, configured_proof_policy
from pim.identity.proofs import DEV_SIGNING_KEY_FILE, ensure_dev_signing_key
from pim.identity.secrets import DEV_SECRET_KEY_FILE, configured_cipher, ensure_dev_secret_key
from pim.identity.totp import DEV_SEAL_KEY_FILE, ensure_dev_seal_key
from pim.notifications.channels import build_channels
from pim.operations import AdminContext
from pim.operations.assignments import start_missing_lifecycles
from pim.operations.seed import seed_demo
from pim.runtime.codec import data_converter
from pim.runtime.devserver import (
    DevServerFailed,
    StateInUse,
    in_use,
    lock_state,
    port_holder,
    port_is_free,
    server_command,
    start_server,
    stop_server,
    wait_until_serving,
)
from pim.runtime.logging import configure_logging, get_logger
from pim.runtime.schedules import ensure_reconcile_schedule
from pim.runtime.settings import PimSettings
from pim.runtime.temporal import find_binary
from pim.runtime.tracing import TracingUnavailable, tracing_interceptors
from pim.store import Store
from pim.store.database import upgrade_async
from workflows.search_attributes import SEARCH_ATTRIBUTES

# The worker (and with it every workflow and activity) is imported by `pim dev`
# and `pim worker` only: the other commands start faster.
if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.runtime import Runtime

log = get_logger("pim.dev")

BANNER = """
PIM dev is ready.
  Temporal:  {address} (namespace {namespace}, task queue {task_queue}){ui}{metrics}
  Store:     {db}
  Temporal's state: {temporal_db} (its log: {temporal_log})
  Keys:      {keys}
  `pim` commands find this store and these keys when run from {here} (they read
  .pim/ in the working directory); anywhere else, set PIM_DATABASE_URL and the keys' settings.
  Try, in another terminal:
    cd {here}{port_hint}
    {try_line}{api_lines}
Press Ctrl-C to stop; state is kept in {state_dir}.
"""
# Through the HTTP API instead: the actor is who signed in, so no --as.
API_LINES = """{portal}
  Or through the HTTP API ({api_url}; its sign-in: {api_url}/dev-issuer), as who signs in (no --as):
    export PIM_API_URL={api_url}
    pim login --user {user} --code "$(pim mfa code {user})"
PIM_API_URL={api_url}"""
PORTAL_LINES = """
  Or in a browser, the portal: {api_url}/
    (sign in as {user} with the code that `pim mfa code {user}` prints)"""
TRY_DEMO = (
    'pim request grp-ops --as alice --duration 2h --justification "INC-42 database failover" '
    '--mfa-code "$(pim mfa code alice)" --wait'
)
TRY_EMPTY = "pim bootstrap root      # the first administrator: README, the administrator's walk-through"
UI_OFFSET = 1000  # the Web UI listens on the front-end port + 1000, as with start_local
API_PORT = 7280


@async_command
async def dev(
    seed: Optional[str] = typer.Option(None, help="load a data set: demo"),
    db: Optional[Path] = typer.Option(None, help="SQLite file for the store (default: PIM_DATABASE_URL or .pim/pim.db)"),
    port: int = typer.Option(7233, help="Temporal front-end port"),
    ui: bool = typer.Option(False, "--ui", help="also serve the Temporal Web UI (on the front-end port + 1000)"),
    metrics_port: Optional[int] = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (default: PIM_METRICS_PORT; 0: off)",
    ),
    api_port: int = typer.Option(
        API_PORT, "--api-port", help="serve the HTTP API on localhost:PORT, with a development issuer (0: no API)"
    ),
) -> None:
    """Run the embedded system: Temporal dev server, worker and store.

    Also the HTTP API (--api-port), with a development OIDC issuer whose users sign in
    with their TOTP code. Server-side commands (dev, worker, db, keys, bootstrap,
    mfa code) always act locally, even with PIM_API_URL set."""
    from worker.telemetry import MetricsUnavailable

    if seed not in (None, "demo"):
        raise CliError(f"--seed: unknown data set {seed!r} (known: demo)", 2)
    _require_free_ports(port, ui)
    _require_api_port(api_port, port, ui)
    config = settings()
    if db is not None:
        config.database_url = f"sqlite+aiosqlite:///{db.resolve()}"
    if metrics_port is not None:
        config.metrics_port = metrics_port
    configure_logging(config.log_format, config.log_level)
    try:
        await _run_dev(config, seed, port, ui, api_port)
    except (MetricsUnavailable, TracingUnavailable, DevServerFailed) as error:
        raise CliError(str(error), 1) from None


def _require_free_ports(port: int, ui: bool) -> None:
    """The ports the dev server listens on, free; else the refusal names what holds them
    (the dev server would otherwise die while we talk to whatever holds the port)."""
    if not 1 <= port <= 65535:
        raise CliError(f"--port: {port} is not a port (1 to 65535)", 2)
    if ui and port + UI_OFFSET > 65535:
        raise CliError(f"--ui: the Web UI would listen on --port + {UI_OFFSET} = {port + UI_OFFSET}; pick a lower --port", 2)
    if not port_is_free(port):
        raise CliError(in_use(f"--port {port}", port, port_holder(port)))
    if ui and not port_is_free(port + UI_OFFSET):
        what = f"--ui: port {port + UI_OFFSET} (the Web UI's, --port + {UI_OFFSET})"
        raise CliError(in_use(what, port + UI_OFFSET, port_holder(port + UI_OFFSET)))


def _require_api_port(api_port: int, port: int, ui: bool) -> None:
    if not 0 <= api_port <= 65535:
        raise CliError(f"--api-port: {api_port} is not a port (1 to 65535; 0: no API)", 2)
    if api_port in (port, port + UI_OFFSET if ui else port):
        raise CliError(f"--api-port: {api_port} is Temporal's (--port{' or the Web UI' if ui else ''}); pick another", 2)


def _api_socket(api_port: int) -> socket.socket | None:
    """The API's port, taken now (after the state directory's lock, so that a second
    `pim dev` here is told about the first one, not about its port)."""
    from pim.api.serve import listening_socket

    if not api_port:
        return None
    try:
        return listening_socket("127.0.0.1", api_port)
    except OSError:
        raise CliError(in_use(f"--api-port {api_port}", api_port, port_holder(api_port), option="--api-port")) from None


async def _run_dev(config: PimSettings, seed: str | None, port: int, ui: bool, api_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from worker.telemetry import metrics_runtime

    state_dir, lock = _own_state_dir()
    with lock:  # one `pim dev` per directory, until this one ends
        api_socket = _api_socket(api_port)
        # Metrics before the client that reports them; then the server (from this, the
        # main thread: see start_server), which starts while the store is prepared
        # and dies with this process.
        runtime = metrics_runtime(config.metrics_port, "127.0.0.1") if config.metrics_port else None
        server = start_server(_server_command(config, port, ui, state_dir), state_dir / "temporal.log")
        try:
            store, proofs = await _prepare_store(config, seed)
            try:
                client = await wait_until_serving(server, lambda: _connect(config, port, runtime), state_dir / "temporal.log")
                await _serve(client, store, config, port, ui, state_dir, stop, proofs, seed, api_socket)
            finally:
                await store.close()
        finally:
            await stop_server(server)
            if api_socket is not None:
                api_socket.close()


def _own_state_dir() -> tuple[Path, IO[str]]:
    """.pim/ in the working directory, readable by its owner only (the store,
    Temporal's database, the keys), and locked: one `pim dev` per directory."""
    os.umask(0o077)
    state_dir = Path(".pim").resolve()
    state_dir.mkdir(exist_ok=True)
    state_dir.chmod(0o700)
    for existing in state_dir.iterdir():
        if existing.is_file():
            existing.chmod(0o600)
    try:
        return state_dir, lock_state(state_dir)  # held until this process ends
    except StateInUse as error:
        raise CliError(
            f"another `pim dev` (pid {error.holder}) keeps its state in {state_dir}: stop it, "
            "or run this one from another directory"
        ) from None


def _server_command(config: PimSettings, port: int, ui: bool, state_dir: Path) -> list[str]:
    return server_command(
        find_binary("temporal"),
        port=port,
        namespace=config.namespace,
        db_filename=state_dir / "temporal.db",
        ui_port=port + UI_OFFSET if ui else None,
        search_attributes=SEARCH_ATTRIBUTES,
    )


async def _prepare_store(config: PimSettings, seed: str | None) -> tuple[Store, ProofPolicy]:
    """The development keys, in .pim/ (mode 0600), which the worker below and every
    `pim` command run from here use (docs/security.md); the store, migrated and seeded."""
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
    return store, proofs


async def _connect(config: PimSettings, port: int, runtime: Runtime | None) -> Client:
    """The worker's client on the dev server, as start_local made it (with metrics and tracing)."""
    from temporalio.client import Client

    return await Client.connect(
        f"127.0.0.1:{port}",
        namespace=config.namespace,
        data_converter=data_converter(config, tolerant=True),  # the worker's: no payload fails a task
        interceptors=tracing_interceptors(config.otel),
        runtime=runtime,
    )


async def _serve(
    client: Client,
    store: Store,
    config: PimSettings,
    port: int,
    ui: bool,
    state_dir: Path,
    stop: asyncio.Event,
    proofs: ProofPolicy,
    seed: str | None,
    api_socket: socket.socket | None,
) -> None:
    """The worker on the dev server, and the API, until Ctrl-C (or SIGTERM)."""
    from worker.app import serving

    async with serving(
        client,
        store,
        config.task_queue,
        proofs=proofs,
        channels=build_channels(_linking_to_portal(config, api_socket)),
        max_cached_workflows=config.max_cached_workflows,
        backstop_every=config.reconcile_interval,
        backstop_grace=config.backstop_grace,
    ):
        started = await start_missing_lifecycles(AdminContext(store, "seed", temporal=client, task_queue=config.task_queue))
        if started:
            log.info("assignment lifecycles started", assignments=started)
        await ensure_reconcile_schedule(client, config.task_queue, config.reconcile_interval)
        async with _serving_api(config, store, client, state_dir, api_socket) as api_url:
            print(_banner(config, port, ui, state_dir, seed, api_url), flush=True)
            await stop.wait()
            log.info("stopping")


def _linking_to_portal(config: PimSettings, api_socket: socket.socket | None) -> PimSettings:
    """The channels' settings: their messages link to the portal this `pim dev` serves
    (http://localhost:7280/requests/...), unless PIM_PORTAL_URL names another."""
    if config.portal_url or not config.portal or api_socket is None:
        return config
    from pim.api.devapp import public_url

    return config.model_copy(update={"portal_url": public_url(api_socket.getsockname()[1])})


@asynccontextmanager
async def _serving_api(
    config: PimSettings, store: Store, client: Client, state_dir: Path, api_socket: socket.socket | None
) -> AsyncIterator[str | None]:
    """The HTTP API on its socket, with the development issuer; yields its URL (None: no API)."""
    if api_socket is None:
        yield None
        return
    from pim.api.devapp import dev_api, public_url
    from pim.api.serve import serving as serving_api
    from pim.identity import totp as mfa

    url = public_url(api_socket.getsockname()[1])
    app = dev_api(config, store, client, ensure_dev_signing_key(), mfa.seal_key(config), url, state_dir)
    async with serving_api(app, api_socket):
        yield url


def _banner(config: PimSettings, port: int, ui: bool, state_dir: Path, seed: str | None, api_url: str | None = None) -> str:
    """What `pim dev` serves and where its state is, as absolute paths: the `pim`
    commands find the store and the keys in the working directory's .pim/."""
    keys = [f"{state_dir / DEV_SIGNING_KEY_FILE.name} (signs actor proofs)"]
    keys.append(
        "PIM_MFA_SECRET_KEY (TOTP secrets)"
        if config.mfa_secret_key
        else f"{state_dir / DEV_SECRET_KEY_FILE.name} (encrypts TOTP secrets)"
    )
    keys.append(
        "PIM_MFA_SEAL_KEY (MFA codes)" if config.mfa_seal_key else f"{state_dir / DEV_SEAL_KEY_FILE.name} (seals MFA codes)"
    )
    if api_url and config.portal:
        from pim.portal.session import DEV_SESSION_KEY_FILE

        keys.append(
            "PIM_PORTAL_SESSION_KEY (the portal's sessions)"
            if config.portal_session_key
            else f"{state_dir / DEV_SESSION_KEY_FILE.name} (seals the portal's session cookies)"
        )
    return BANNER.format(
        address=f"localhost:{port}",
        namespace=config.namespace,
        task_queue=config.task_queue,
        ui=f"\n  Web UI:    http://localhost:{port + UI_OFFSET}" if ui else "",
        metrics=(f"\n  Metrics:   http://127.0.0.1:{config.metrics_port}/metrics" if config.metrics_port else ""),
        db=store_location(config.database_url),
        temporal_db=state_dir / "temporal.db",
        temporal_log=state_dir / "temporal.log",
        keys=",\n             ".join(keys),
        here=state_dir.parent,
        port_hint="" if port == 7233 else f"\n    export PIM_TEMPORAL_ADDRESS=localhost:{port}",
        try_line=TRY_DEMO if seed == "demo" else TRY_EMPTY,
        api_lines=_api_lines(config, api_url, "alice" if seed == "demo" else "root") if api_url else "",
        state_dir=state_dir,
    )


def _api_lines(config: PimSettings, api_url: str, user: str) -> str:
    portal = PORTAL_LINES.format(api_url=api_url, user=user) if config.portal else ""
    return API_LINES.format(api_url=api_url, user=user, portal=portal)


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
    """Run a worker against an existing Temporal server and database (PIM_* settings).

    Server-side: it runs here, even with PIM_API_URL set."""
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
