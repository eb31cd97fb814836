"""/openapi.json describes every endpoint, typed, and the API keeps to it: schemathesis
generates requests from the document (valid ones and invalid ones) and sends them
over real HTTP as a signed-in user; no answer is a server error, and every answer
has a status, a content type and a body that the document allows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.harness import running_api
from tests.conftest import dev_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 15  # per operation and mode: enough to reach every documented branch, small enough for 2 cores


def fuzz(base: str, token: str, document: dict[str, Any]) -> list[str]:
    """Every operation, valid and invalid inputs; returns the failures found (empty: none)."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for found in schema.get_all_operations():
        operation = found.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=30)

            try:
                check()
            except Unsatisfiable:
                pass  # nothing to send wrong to an operation without parameters (the probes)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:  # noqa: BLE001 - schemathesis raises groups; collected, reported together
                failures.append(f"{operation.label} ({mode.value}): {str(error)[:3000]}")
    return failures


@pytest_asyncio.fixture(scope="module")
async def own_dev_env():
    """A dev server of this module's own: the lists it fuzzes hold only its requests. On the
    session's server they also held earlier tests' running requests, whose workers had stopped,
    and a status query to one of those waits for a worker that never comes."""
    async with dev_server() as env:
        yield env


async def test_every_endpoint_keeps_to_its_openapi_document(own_dev_env, demo):
    async with running_api(own_dev_env, demo, api_rate_requests=100_000, api_rate_decisions=100_000) as api:
        document = (await api.get(None, "/openapi.json")).json()
        assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        token = await api.sign_in("alice")
        failures = await asyncio.to_thread(fuzz, api.base, token, document)
        assert not failures, "\n\n".join(failures)
