"""Settings from the environment (PIM_*), and how to reach Temporal.

The Temporal connection also follows Temporal's own client environment
configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_PROFILE and
its TOML file); a PIM_ setting that is set explicitly wins over it."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

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
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    directory: Literal["store"] = "store"
    max_role_assignable_groups: int = 500
    # How often the Reconcile workflow runs (a Temporal Schedule).
    reconcile_interval: timedelta = timedelta(minutes=5)
    # `pim worker`: an HTTP endpoint for liveness and readiness (0: none).
    health_port: int = 0
    # Payload encryption (AES-GCM) of workflow inputs, signals, updates and results:
    # "KEY_ID:BASE64KEY[,KEY_ID:BASE64KEY...]", the first encrypts, all decrypt.
    payload_keys: str | None = None
    # MFA codes are sealed (HMAC) by clients before they reach Temporal, and checked
    # by workers: a base64 secret of 32 bytes or more, the same on both sides (pim/mfa.py).
    # `pim dev` generates one into .pim/mfa-seal.key, which is used when this is unset.
    mfa_seal_key: str | None = None
    # Tests only: faults injected into the directory, e.g. "remove:fail:3,add:hang:1".
    directory_faults: str | None = None


def load_settings() -> PimSettings:
    return PimSettings()
