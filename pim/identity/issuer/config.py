"""What the development issuer serves: its public base URL, its audience, its
clients, and how long what it issues lives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

AUTHORIZATION_CODE = "authorization_code"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"
GRANT_TYPES = (AUTHORIZATION_CODE, DEVICE_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS)

# offline_access is accepted for clients that ask for it; refresh tokens are issued
# to every client registered for the refresh_token grant, whether it asks or not.
SCOPES = ("openid", "profile", "email", "offline_access")

# Where `pim dev` keeps the issuer's signing key, next to its other keys.
DEV_ISSUER_KEY_FILE = Path(".pim") / "dev-issuer.key"

PIM_CLI = "pim-cli"
PIM_PORTAL = "pim-portal"


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ip_address(host).is_loopback
    except ValueError:
        return False


def _absolute_url(url: str, what: str, *, allow_query: bool = True) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what}: {url!r} must be an absolute http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{what}: {url!r} must use https (plain http only on loopback)")
    if parts.fragment or (parts.query and not allow_query):
        raise ValueError(f"{what}: {url!r} must have no {'fragment' if parts.fragment else 'query'}")
    return url


@dataclass(frozen=True)
class IssuerClient:
    """A registered client. Public (`secret` None): it proves nothing at the token
    endpoint, so the code flow requires PKCE (S256). Confidential: it authenticates
    with `client_secret_basic` or `client_secret_post`. A client of the
    client_credentials grant is a service: its tokens name `principal_id`.

    A loopback redirect URI registered without a port (`http://127.0.0.1/callback`)
    accepts any port (RFC 8252, section 7.3)."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    grant_types: tuple[str, ...] = (AUTHORIZATION_CODE, DEVICE_CODE, REFRESH_TOKEN)
    redirect_uris: tuple[str, ...] = ()
    scope: str = " ".join(SCOPES)  # what it may be granted
    default_scope: str = "openid profile email"  # what it gets when it asks for nothing
    principal_id: str | None = None  # client_credentials: the `sub` of its tokens
    name: str = ""  # shown on the sign-in page

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_id.isprintable() or " " in self.client_id:
            raise ValueError(f"client_id: {self.client_id!r} must be printable, without spaces")
        unknown = set(self.grant_types) - set(GRANT_TYPES)
        if unknown:
            raise ValueError(f"client {self.client_id}: unsupported grant types {sorted(unknown)}")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError(f"client {self.client_id}: a secret must be 16 characters or more")
        if CLIENT_CREDENTIALS in self.grant_types and (self.secret is None or not self.principal_id):
            raise ValueError(f"client {self.client_id}: client_credentials needs a secret and a principal_id")
        if AUTHORIZATION_CODE in self.grant_types and not self.redirect_uris:
            raise ValueError(f"client {self.client_id}: the authorization_code grant needs a redirect URI")
        for uri in self.redirect_uris:
            _absolute_url(uri, f"client {self.client_id}: redirect URI")
        if not set(self.default_scope.split()) <= set(self.scope.split()):
            raise ValueError(f"client {self.client_id}: default_scope must be part of scope")

    @property
    def public(self) -> bool:
        return self.secret is None

    @classmethod
    def service(cls, client_id: str, secret: str, principal_id: str, *, scope: str = "") -> IssuerClient:
        """A confidential client of the client_credentials grant, acting as `principal_id`."""
        return cls(
            client_id,
            secret=secret,
            grant_types=(CLIENT_CREDENTIALS,),
            scope=scope,
            default_scope=scope,
            principal_id=principal_id,
            name=client_id,
        )


def pim_cli_client() -> IssuerClient:
    """`pim-cli`: public; the device flow, the code flow with PKCE on a loopback
    redirect (any port), and refresh tokens."""
    return IssuerClient(
        PIM_CLI,
        redirect_uris=("http://127.0.0.1/callback", "http://[::1]/callback", "http://localhost/callback"),
        name="pim command line",
    )


def pim_portal_client() -> IssuerClient:
    """`pim-portal`: the web portal (pim/portal), public; the code flow with PKCE,
    redirected to /auth/callback on a loopback address (any port), and refresh tokens."""
    return IssuerClient(
        PIM_PORTAL,
        grant_types=(AUTHORIZATION_CODE, REFRESH_TOKEN),
        redirect_uris=("http://localhost/auth/callback", "http://127.0.0.1/auth/callback", "http://[::1]/auth/callback"),
        name="PIM portal",
    )


@dataclass(frozen=True)
class IssuerSettings:
    """`issuer` is the public base URL every published URL derives from (the app
    may be mounted under a prefix: `http://127.0.0.1:7280/dev-issuer`). `audience`
    is the `aud` of access tokens. `key_file`: where the signing key is kept (mode
    0600), created on first use; None keeps it in memory (tokens die with the
    process)."""

    issuer: str
    audience: str
    clients: Sequence[IssuerClient] = field(default_factory=lambda: (pim_cli_client(),))
    token_lifetime: timedelta = timedelta(minutes=15)  # access and ID tokens
    key_file: Path | None = None
    code_lifetime: timedelta = timedelta(minutes=2)  # an authorization code
    device_code_lifetime: timedelta = timedelta(minutes=10)  # a device code and its user code
    device_poll_interval: timedelta = timedelta(seconds=5)  # RFC 8628's interval
    # A session: refresh tokens rotate, and none outlives its sign-in by more than this.
    session_lifetime: timedelta = timedelta(hours=12)

    def __post_init__(self) -> None:
        issuer = self.issuer.rstrip("/")
        object.__setattr__(self, "issuer", _absolute_url(issuer, "issuer", allow_query=False))
        if not self.audience:
            raise ValueError("audience: required")
        object.__setattr__(self, "clients", tuple(self.clients))
        ids = [c.client_id for c in self.clients]
        if len(set(ids)) != len(ids):
            raise ValueError("clients: a client_id is listed twice")
        for name in ("token_lifetime", "code_lifetime", "device_code_lifetime", "session_lifetime"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name}: must be positive")
        if self.device_poll_interval < timedelta(0):
            raise ValueError("device_poll_interval: must not be negative")

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"
