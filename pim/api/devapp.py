"""The API as `pim dev` serves it: on its own port (`--api-port`, 7280 by default),
with the development issuer (pim/identity/issuer) mounted at /dev-issuer on the
same port as its identity provider, so that the whole system stays on this
machine and offline.

    PIM_API_URL=http://localhost:7280                     the API
    http://localhost:7280/dev-issuer                      its issuer: the store's users sign in with their TOTP code
    http://localhost:7280/                                the portal (client pim-portal of that issuer)

The API signs its callers' proofs with `pim dev`'s own key (.pim/proof-signing.key,
which the worker trusts) and seals MFA codes with the development seal key, as
the local command line does. The issuer keeps its key in .pim/dev-issuer.key, so
tokens outlive a restart of `pim dev`; the portal seals its session cookies with
.pim/portal-session.key (unless PIM_PORTAL_SESSION_KEY is set), so sessions do too."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from pydantic import SecretStr

from pim.api.app import allowed_hosts_with, create_app
from pim.api.services import ApiServices
from pim.client import PimClient
from pim.identity.issuer import DEV_ISSUER_KEY_FILE, IssuerSettings, create_issuer_app, pim_cli_client, pim_portal_client
from pim.identity.oidc import OidcConfig, OidcVerifier
from pim.identity.proofs import SigningKey
from pim.portal.session import DEV_SESSION_KEY_FILE, ensure_dev_session_key
from pim.runtime.settings import PimSettings
from pim.store import Store

if TYPE_CHECKING:
    from temporalio.client import Client

ISSUER_PATH = "/dev-issuer"
AUDIENCE = "pim-api"
# The names the API answers to on this machine, whatever PIM_API_ALLOWED_HOSTS says.
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def public_url(port: int) -> str:
    """What `pim dev` prints as PIM_API_URL."""
    return f"http://localhost:{port}"


def dev_api(
    config: PimSettings, store: Store, temporal: Client, signer: SigningKey, seal_key: bytes | None, api_url: str, state_dir: Path
) -> FastAPI:
    """The API for `pim dev`'s store and worker, its development issuer mounted."""
    issuer_url = api_url + ISSUER_PATH
    session_key = config.portal_session_key
    if config.portal and session_key is None:
        session_key = SecretStr(ensure_dev_session_key(state_dir / DEV_SESSION_KEY_FILE.name))
    settings = config.model_copy(
        update={
            "oidc_issuer": issuer_url,
            "oidc_audience": AUDIENCE,
            "oidc_principal_claim": "sub",  # the development issuer's tokens name the user there
            "api_allowed_hosts": allowed_hosts_with(config, *LOCAL_HOSTS),
            "api_cli_client_id": pim_cli_client().client_id,
            "portal_client_id": pim_portal_client().client_id,
            "portal_client_secret": None,
            "portal_session_key": session_key,
        }
    )
    verifier = OidcVerifier(OidcConfig(issuer=issuer_url, audiences=(AUDIENCE,)))
    pim = PimClient(temporal, config.task_queue, seal_key, signer)
    app = create_app(ApiServices(settings, store, pim, verifier))
    issuer = IssuerSettings(
        issuer=issuer_url,
        audience=AUDIENCE,
        clients=(pim_cli_client(), pim_portal_client()),
        key_file=state_dir / DEV_ISSUER_KEY_FILE.name,
    )
    app.mount(ISSUER_PATH, create_issuer_app(store, issuer))
    return app
