"""Settings from the environment (PIM_*), and how to reach Temporal.

The Temporal connection also follows Temporal's own client environment
configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_PROFILE and
its TOML file); a PIM_ setting that is set explicitly wins over it."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIM_", extra="ignore")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = "pim"
    # Temporal Cloud or a secured cluster: an API key, or mutual TLS with files.
    temporal_api_key: str | None = None
    temporal_tls: bool | None = None  # TLS without client certificates (e.g. with an API key)
    temporal_tls_cert: str | None = None  # client certificate (PEM file)
    temporal_tls_key: str | None = None  # client private key (PEM file)
    temporal_tls_ca: str | None = None  # server CA (PEM file), when not a public CA
    temporal_tls_server_name: str | None = None
    database_url: str = "sqlite+aiosqlite:///./.pim/pim.db"
    # `pim db upgrade` on PostgreSQL, run as the tables' owner: the role the workers connect
    # as, granted the tables and the audit log by SELECT and INSERT only (docs/security.md).
    database_app_role: str | None = None
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    # Where membership is written (pim/directories): the store's own table, LDAP, or Microsoft Graph.
    directory: Literal["store", "ldap", "msgraph"] = "store"
    max_role_assignable_groups: int = 500
    # How often the Reconcile workflow runs (a Temporal Schedule): a terminated
    # activation loses its access within about twice this.
    reconcile_interval: timedelta = Field(default=timedelta(seconds=30), ge=timedelta(seconds=5))
    # An activation's grant past its end by more than this is revoked by the backstop,
    # whatever state its workflow is in (its own timer normally revokes it on time).
    backstop_grace: timedelta = Field(default=timedelta(seconds=60), ge=timedelta(0))
    # `pim worker`: an HTTP endpoint for liveness and readiness (0: none).
    health_port: int = 0
    # Payload encryption (AES-GCM) of workflow inputs, signals, updates and results:
    # "KEY_ID:BASE64KEY[,KEY_ID:BASE64KEY...]", the first encrypts, all decrypt.
    payload_keys: str | None = None
    # Actor proofs (pim/identity/proofs.py). Workers and operations trust the public keys
    # listed here, "ISSUER:KEY_ID:BASE64URL_KEY[,...]"; unset, a worker refuses to start.
    proof_trusted_keys: str | None = None
    # A front end's private key, "ISSUER:KEY_ID:BASE64URL_SEED" (`pim dev` keeps its own
    # in .pim/proof-signing.key). Never on a worker in production.
    proof_signing_key: SecretStr | None = None
    # Development only: accept payloads without a valid proof. Logged loudly at start.
    insecure_accept_unproven: bool = False
    # TOTP secrets are encrypted at rest (pim/identity/secrets.py): "KEY_ID:BASE64KEY[,...]".
    # `pim dev` keeps its own in .pim/mfa-secret.key.
    mfa_secret_key: SecretStr | None = None
    # MFA codes are sealed (HMAC) by clients before they reach Temporal, and checked
    # by workers: a base64 secret of 32 bytes or more, the same on both sides (pim/mfa.py).
    # `pim dev` generates one into .pim/mfa-seal.key, which is used when this is unset.
    mfa_seal_key: str | None = None
    # Tests only: faults injected into the directory, e.g. "remove:fail:3,add:hang:1".
    directory_faults: str | None = None
    # Open activations the worker keeps in memory; beyond this, a workflow whose
    # timer fires is rebuilt from its history first (slower expiry, less memory).
    # About 75 KB of worker memory each (README "Performance").
    max_cached_workflows: int = Field(default=1_000, ge=0)
    # Notification channels (pim/channels): email when smtp_host is set, a webhook when webhook_url is set.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "pim@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None  # SecretStr: a settings dump or repr never shows it
    smtp_starttls: bool = False  # upgrade a plain connection (usually port 587)
    smtp_tls: bool = False  # implicit TLS from the first byte (usually port 465)
    smtp_timeout: float = 10.0
    webhook_url: SecretStr | None = None  # its path is often the credential (a Slack incoming webhook)
    webhook_secret: SecretStr | None = None  # signs each delivery (X-PIM-Signature)
    webhook_format: Literal["json", "slack"] = "json"
    webhook_timeout: float = 10.0
    # Microsoft Graph directory (pim/directories/msgraph.py): an app registration with a client secret.
    graph_tenant_id: str | None = None
    graph_client_id: str | None = None
    graph_client_secret: SecretStr | None = None
    graph_authority: str = "https://login.microsoftonline.com"
    graph_base_url: str = "https://graph.microsoft.com/v1.0"  # settings so that tests can point at a local fake
    # LDAP directory (pim/directories/ldap.py): groups are entries whose member / owner
    # attributes hold user DNs, found through these templates ({base} is ldap_base_dn).
    ldap_url: str = "ldap://localhost:389"  # ldap:// or ldaps://
    ldap_bind_dn: str | None = None  # None: an anonymous bind
    ldap_bind_password: SecretStr | None = None
    ldap_base_dn: str = ""
    ldap_group_dn: str = "cn={group_id},ou=groups,{base}"
    ldap_user_dn: str = "uid={principal_id},ou=people,{base}"
    # openldap: groupOfNames, member and owner; ad: group, member and managedBy (one owner).
    ldap_flavor: Literal["openldap", "ad"] = "openldap"
    # groupOfNames must keep one member (OpenLDAP's core schema): this DN stands in for
    # "nobody" when the last member is removed ("" is the empty DN, which OpenLDAP accepts).
    ldap_empty_member: str = ""
    ldap_ca_file: str | None = None  # ldaps:// with a private CA (PEM file)
    ldap_timeout: float = 10.0  # seconds, to connect and for each answer
    # Step-up MFA with an identity provider (pim/oidc.py): ID or access tokens from this
    # issuer, for this audience ("a,b": any of them), as `{"method": "oidc", "token": ...}`.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # The signing keys (JWKS); unset: the jwks_uri of {issuer}/.well-known/openid-configuration.
    oidc_jwks_url: str | None = None
    # The claim that names the principal id (e.g. preferred_username, upn, email).
    oidc_principal_claim: str = "sub"
    # A client-credentials token without that claim names its service principal here
    # (Entra: azp or appid; RFC 9068: client_id). Only a principal of kind "service" matches.
    oidc_service_claim: str = "client_id"
    # The HTTP API (`pim api`, docs/api.md). It authenticates callers with the issuer
    # above (PIM_OIDC_*), and signs their proofs with PIM_PROOF_SIGNING_KEY.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=7280, ge=1, le=65535)
    # The Host header values the API answers to ("*.example.com" allowed); others get 400.
    api_allowed_hosts: str = "localhost,127.0.0.1,[::1]"
    # Browser origins allowed to call the API (CORS); none by default.
    api_cors_origins: str = ""
    # Per principal and per minute: requests, approval decisions; failed MFA codes per 15 minutes.
    api_rate_requests: int = Field(default=600, ge=1)
    api_rate_decisions: int = Field(default=60, ge=1)
    api_rate_mfa_failures: int = Field(default=5, ge=1)
    # How long POST waits for a request to be validated before it answers (seconds).
    api_settle_timeout: float = Field(default=30.0, gt=0)
    # The public OAuth client the command line signs in as (`pim login`, the device flow),
    # published by GET /api/auth/config with the issuer.
    api_cli_client_id: str = "pim-cli"
    # What `pim login` asks the issuer for; unset: "openid profile offline_access". An issuer
    # that wants the API named in the scope (Entra: "api://pim/.default offline_access") says so here.
    api_cli_scope: str | None = None
    # The portal (pim/portal): web pages served by the API's own app, signed in with the
    # issuer above (PIM_OIDC_ISSUER) by the code flow with PKCE, as this client.
    portal: bool = True
    portal_client_id: str = "pim-portal"
    # A confidential client's secret (client_secret_basic); unset: a public client (PKCE alone).
    portal_client_secret: SecretStr | None = None
    # What the portal asks the issuer for; unset: "openid profile offline_access".
    portal_scope: str | None = None
    # The portal's public base URL (https://pim.example.com), from which its redirect URI
    # (/auth/callback) is made; unset: the URL each request came to. The worker's
    # notifications link to {portal_url}/requests/{id} (none when unset; `pim dev`: its own).
    portal_url: str | None = None
    # Encrypts and authenticates the session cookie (AES-GCM): "KEY_ID:BASE64KEY[,...]",
    # 256-bit keys, the first one seals. `pim dev` keeps its own in .pim/portal-session.key.
    portal_session_key: SecretStr | None = None
    # How long a portal session lasts without a new sign-in (the issuer may end it sooner).
    portal_session_lifetime: timedelta = Field(default=timedelta(hours=12), ge=timedelta(minutes=5))
    # The command line's API mode (pim/cli/remote.py): with this set, every user command
    # goes through the HTTP API with the token of `pim login`, never to Temporal or the store.
    api_url: str | None = None
    # Where `pim login` keeps its tokens (mode 0600); unset: $XDG_CONFIG_HOME/pim or ~/.config/pim.
    config_dir: str | None = None
    # Observability (README "Observability"). `pim worker` / `pim dev`: Prometheus metrics
    # (Temporal's and pim_*) on http://0.0.0.0:PORT/metrics (0: none).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # OpenTelemetry tracing of clients and workers (needs the otel extra); with otlp,
    # the standard OTEL_EXPORTER_OTLP_ENDPOINT says where spans go.
    otel: Literal["off", "console", "otlp"] = "off"


def load_settings() -> PimSettings:
    return PimSettings()
