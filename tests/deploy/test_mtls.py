"""The certificates of deploy/generate-tls.sh at work: Temporal clients with them
reach a real Temporal server over mutual TLS, and clients without one do not.

No Docker engine runs here, so the server is the dev server of the other tests
behind a TLS front that requires a client certificate from the deployment's CA,
as `TEMPORAL_TLS_REQUIRE_CLIENT_AUTH` makes the server of docker-compose.yml do
(tests/deploy/test_trust.py checks those settings). The clients are the real
ones: pim's connection (the Rust core's TLS, with PIM_TEMPORAL_TLS_*) for the API
and the workers, and the Go `temporal` CLI for the UI's and the namespace setup's
certificates (the UI server and the Temporal server are Go too)."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from pim.runtime.settings import PimSettings
from pim.runtime.temporal import connect_with, find_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONNECT_TIMEOUT = 20.0  # a refused handshake fails fast; this only bounds a hang

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


def generate(directory: Path) -> Path:
    done = subprocess.run(
        ["/bin/sh", str(DEPLOY / "generate-tls.sh"), str(directory)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return directory


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("deploy") / "tls")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def mutual_tls_front(tls: Path, target: str) -> AsyncIterator[str]:
    """A TLS listener with the server's certificate that requires a client
    certificate from the CA, in front of `target`; yields its address."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls / "temporal" / "ca.pem"))
    context.load_cert_chain(tls / "temporal" / "tls.pem", tls / "temporal" / "tls.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = target.rsplit(":", 1)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        with suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


@pytest.fixture
async def front(tls, dev_env) -> AsyncIterator[str]:
    async with mutual_tls_front(tls, dev_env.client.service_client.config.target_host) as address:
        yield address


def settings_of(address: str, directory: Path | None, ca: Path, server_name: str = "temporal") -> PimSettings:
    """A pim service's settings as docker-compose.yml gives them (its own directory under deploy/tls)."""
    return PimSettings(
        temporal_address=address,
        temporal_tls_cert=str(directory / "tls.pem") if directory else None,
        temporal_tls_key=str(directory / "tls.key") if directory else None,
        temporal_tls_ca=str(ca),
        temporal_tls_server_name=server_name,
    )


async def reaches(settings: PimSettings) -> bool:
    try:
        client = await asyncio.wait_for(connect_with(settings), CONNECT_TIMEOUT)
        return bool(await asyncio.wait_for(client.service_client.check_health(), CONNECT_TIMEOUT))
    except (RuntimeError, OSError, asyncio.TimeoutError):
        return False


@pytest.mark.parametrize("component", ["api", "worker"])
async def test_the_api_and_the_workers_reach_temporal_with_their_certificates(tls, front, component):
    assert await reaches(settings_of(front, tls / component, tls / component / "ca.pem"))


async def test_a_client_without_a_certificate_is_refused(tls, front):
    assert not await reaches(settings_of(front, None, tls / "api" / "ca.pem"))


async def test_a_certificate_from_another_ca_is_refused(tls, front, tmp_path):
    theirs = generate(tmp_path / "theirs")
    # Their client certificate, and our CA to check the server with: the server refuses the client.
    assert not await reaches(settings_of(front, theirs / "api", tls / "api" / "ca.pem"))


async def test_a_client_refuses_a_server_under_another_name(tls, front):
    assert not await reaches(settings_of(front, tls / "api", tls / "api" / "ca.pem", server_name="temporal.evil"))


@pytest.mark.parametrize("component", ["ui", "admin"])
async def test_the_go_clients_reach_temporal_with_their_certificates(tls, front, component):
    """The `temporal` CLI, configured by the environment variables that
    temporal-create-namespace gets in docker-compose.yml."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tls.parent),
        "TEMPORAL_ADDRESS": front,
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tls / component / "tls.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tls / component / "tls.key"),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tls / component / "ca.pem"),
        "TEMPORAL_TLS_SERVER_NAME": "temporal",
    }
    process = await asyncio.create_subprocess_exec(
        find_binary("temporal"),
        "operator",
        "cluster",
        "health",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0 and b"SERVING" in output, output.decode()
