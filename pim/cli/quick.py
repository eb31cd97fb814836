"""The quick path of `pim status ID [--json]`, the command people and scripts run
most: it answers in the time Python takes to start and load Temporal's service
client, without Typer, pydantic or the SDK's full client and data converter
(about a third of the full path's time; bench/cli_latency.py measures it).

It is taken only when nothing about the call needs more: the arguments are
exactly `status ID`, with `--json` before or after ID, and no setting changes
how the command line talks to Temporal (TLS, an API key, payload encryption,
tracing, or a Temporal profile with more than an address and a namespace).
Anything else, and any answer it does not expect, goes the full way
(pim/cli/app.py), which prints the same: the text is pim/cli/describe.py's for
both, and the JSON is the `status` query's answer as the workflow gave it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Mapping

from pim.cli.describe import describe_status
from pim.cli.errors import CliError, EncryptedPayloads, TemporalUnreachable, error_line

# The settings (pim/runtime/settings.py) that shape the connection to Temporal
# beyond its address and namespace (pim/runtime/temporal.py, codec.py, tracing.py):
# when one is set, the full path runs.
CONNECTION_SETTINGS = frozenset(
    {
        "temporal_api_key",
        "temporal_tls",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_ca",
        "temporal_tls_server_name",
        "payload_keys",
        "otel",
    }
)
DEFAULT_ADDRESS, DEFAULT_NAMESPACE = "localhost:7233", "default"


class FullPath(Exception):
    """This call needs the full command line."""


def answer(argv: list[str], environ: Mapping[str, str] = os.environ) -> int | None:
    """The exit code of a `pim status` answered here, or None: run the full path."""
    arguments = status_arguments(argv)
    if arguments is None or api_mode(environ):
        return None
    request_id, as_json = arguments
    try:
        target, namespace = connection(environ)
        status = asyncio.run(query_status(target, namespace, request_id))
    except FullPath:
        return None
    except CliError as error:
        sys.stderr.write(f"error: {error}\n")
        return error.exit_code
    try:
        text = json.dumps(status, indent=2, ensure_ascii=False) if as_json else describe_status(status)
    except (KeyError, TypeError, ValueError, AttributeError):  # an answer of another shape: the full path judges it
        return None
    sys.stdout.write(text + "\n")
    return 0


def api_mode(environ: Mapping[str, str]) -> bool:
    """PIM_API_URL set: the status comes from the HTTP API (pim/cli/remote.py), never from Temporal."""
    return any(key.upper() == "PIM_API_URL" and value for key, value in environ.items())


def status_arguments(argv: list[str]) -> tuple[str, bool] | None:
    """(ID, --json) for `status ID`, `status ID --json` or `status --json ID`; else None."""
    if not argv or argv[0] != "status":
        return None
    rest = argv[1:]
    as_json = "--json" in rest
    if as_json:
        rest.remove("--json")
    if len(rest) != 1 or not rest[0] or rest[0].startswith("-"):
        return None
    return rest[0], as_json


def connection(environ: Mapping[str, str]) -> tuple[str, str]:
    """Temporal's address and namespace as the full path finds them (connect_options):
    Temporal's own environment configuration, then PIM_TEMPORAL_ADDRESS and PIM_NAMESPACE."""
    pim = {key[4:].lower(): value for key, value in environ.items() if key[:4].upper() == "PIM_"}
    if any(name in pim for name in CONNECTION_SETTINGS if not (name == "otel" and pim.get(name) == "off")):
        raise FullPath()
    from temporalio.envconfig import ClientConfig

    try:
        options: dict[str, Any] = dict(ClientConfig.load_client_connect_config(override_env_vars=dict(environ)))
    except Exception:  # noqa: BLE001 - a profile the full path reports properly
        raise FullPath() from None
    if set(options) - {"target_host", "namespace"}:  # TLS, an API key, metadata: the full path
        raise FullPath()
    target = pim.get("temporal_address") or options.get("target_host") or DEFAULT_ADDRESS
    namespace = pim.get("namespace") or options.get("namespace") or DEFAULT_NAMESPACE
    return target, namespace


async def query_status(target: str, namespace: str, request_id: str) -> dict[str, Any]:
    """The `status` query's answer as JSON, as PimClient.status would get it."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.query.v1 import WorkflowQuery
    from temporalio.api.workflowservice.v1 import QueryWorkflowRequest
    from temporalio.service import ConnectConfig, RPCError, RPCStatusCode, ServiceClient

    try:
        service = await ServiceClient.connect(ConnectConfig(target_host=target))
    except RuntimeError:  # what the SDK raises when the connection fails
        raise TemporalUnreachable(target) from None
    request = QueryWorkflowRequest(
        namespace=namespace,
        execution=WorkflowExecution(workflow_id=request_id),
        query=WorkflowQuery(query_type="status"),
    )
    try:
        response = await service.workflow_service.query_workflow(request, retry=True)
    except RPCError as error:
        if error.status == RPCStatusCode.INVALID_ARGUMENT:  # the SDK's WorkflowQueryFailedError
            raise CliError(f"the request could not answer: {error.message}") from None
        known = error_line(error)
        if known is None:
            raise FullPath() from None
        raise CliError(*known) from None
    payloads = response.query_result.payloads
    if response.HasField("query_rejected") or len(payloads) != 1:
        raise FullPath()
    encoding = payloads[0].metadata.get("encoding")
    if encoding == b"binary/encrypted":  # pim/runtime/codec.py's ENCODING: no keys here
        raise EncryptedPayloads()
    if encoding != b"json/plain":
        raise FullPath()
    try:
        status = json.loads(payloads[0].data)
    except ValueError:
        raise FullPath() from None
    if not isinstance(status, dict):
        raise FullPath()
    return status
