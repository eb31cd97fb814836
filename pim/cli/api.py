"""`pim api`: the HTTP API as a service of its own (docs/api.md), on uvicorn.

It refuses to start, in one line, without what makes it safe: the company's
issuer (PIM_OIDC_ISSUER, PIM_OIDC_AUDIENCE), whose tokens alone identify a
caller, the signing key (PIM_PROOF_SIGNING_KEY) with which it proves, to the
workers, that the caller is the actor, and, with the portal on (PIM_PORTAL), the
key that seals its session cookies (PIM_PORTAL_SESSION_KEY). A server-side command: it runs where it
is started, whether PIM_API_URL is set or not."""

from __future__ import annotations

from typing import Optional

import typer

from pim.cli.common import CliError, TemporalUnreachable, async_command, settings, temporal_target
from pim.runtime.settings import PimSettings


@async_command
async def api(
    host: Optional[str] = typer.Option(None, "--host", help="the address to listen on (default: PIM_API_HOST, 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, "--port", help="the port (default: PIM_API_PORT, 7280)"),
) -> None:
    """Serve the HTTP API: Microsoft Graph's PIM for Groups resources and /api (PIM_API_HOST:PIM_API_PORT)."""
    import uvicorn

    from pim.api.app import create_app
    from pim.api.serve import listening_socket, server_config
    from pim.api.services import ApiServices
    from pim.identity.proofs import configured_signing_key
    from pim.runtime.logging import configure_logging, get_logger

    config = settings()
    host, port = host or config.api_host, port if port is not None else config.api_port
    if not 1 <= port <= 65535:
        raise CliError(f"--port: {port} is not a port (1 to 65535)", 2)
    if not config.oidc_issuer:
        raise CliError("PIM_OIDC_ISSUER is not set: the API accepts only the company's tokens (set it and PIM_OIDC_AUDIENCE)")
    try:
        if configured_signing_key(config) is None:
            raise CliError("PIM_PROOF_SIGNING_KEY is not set: the API signs its callers' actions with it (`pim keys new`)")
    except ValueError as error:  # a key that cannot be read
        raise CliError(str(error), 2) from None
    _require_portal_key(config)
    configure_logging(config.log_format, config.log_level)
    try:
        sock = listening_socket(host, port)
    except OSError as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    try:
        services = await ApiServices.open(config)
    except ValueError as error:  # a setting that is missing or wrong (PIM_OIDC_AUDIENCE, a key)
        sock.close()
        raise CliError(str(error), 2) from None
    except RuntimeError as error:  # what Temporal's SDK raises when the connection fails
        sock.close()
        raise TemporalUnreachable(temporal_target()) from error
    get_logger("pim.api").info("pim api listening", url=f"http://{host}:{port}", issuer=config.oidc_issuer, portal=config.portal)
    try:
        await uvicorn.Server(server_config(create_app(services))).serve(sockets=[sock])
    finally:
        await services.close()
        sock.close()


def _require_portal_key(config: PimSettings) -> None:
    """The portal (on unless PIM_PORTAL=false) seals its session cookies with PIM_PORTAL_SESSION_KEY."""
    from pim.portal.session import configured_session_codec

    if not config.portal:
        return
    try:
        codec = configured_session_codec(config)
    except ValueError as error:  # a key that cannot be read
        raise CliError(str(error), 2) from None
    if codec is None:
        raise CliError(
            "PIM_PORTAL_SESSION_KEY is not set: the portal seals its session cookies with it "
            "(`pim keys new`); or set PIM_PORTAL=false to serve the API alone"
        )
