"""JSON logs: every line an activity writes carries its workflow, attempt and
request (worker/log_context.py); workflow lines carry the workflow's context and
their `extra` fields; secrets are masked whoever logs them (pim/logging.py)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
import structlog
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pim.domain.assignments import AssignmentEnd, AssignmentPlan
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.status import AccessChange, AdmitInput, AuditRecord
from pim.identity.totp import current_code
from pim.runtime.logging import configure_logging, get_logger, is_secret_key
from pim.runtime.temporal import find_binary, register_search_attributes
from tests.conftest import running_worker
from tests.polling import settled
from worker.log_context import input_fields

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


@pytest.fixture
def json_logs():
    """configure_logging("json") into a buffer; the previous set-up comes back after."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    configure_logging("json", "INFO", stream=buffer)
    structlog.configure(cache_logger_on_first_use=False)  # no logger keeps this buffer after the test
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


# --- masking -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "code",
        "mfa_code",
        "mfa",
        "token",
        "access_token",
        "accessToken",
        "id_token",
        "secret",
        "client_secret",
        "password",
        "smtp_password",
        "Authorization",
        "authorization",
        "api_key",
        "apiKey",
        "x-api-key",
        "otp",
        "cookie",
    ],
)
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "event",
        "request_id",
        "group_id",
        "codes",
        "error_codes",
        "status_code",
        "exit_code",
        "state",
        "principal_id",
        "attempt",
        "tokens",
        "action",
    ],
)
def test_ordinary_keys(key):
    assert not is_secret_key(key)


def test_secrets_are_masked_in_json_output(json_logs):
    get_logger("pim.test").info(
        "checking",
        mfa_code="123456",
        request_id="activation/grp-ops/member/alice",
        evidence={"method": "totp", "code": "654321", "nested": [{"token": "eyJabc"}]},
        headers={"Authorization": "Bearer eyJdef"},
        status_code=200,
    )
    logging.getLogger("some.library").info("stdlib too", extra={"client_secret": "s3cret", "smtp_password": "pw"})
    structured, stdlib = lines(json_logs)
    assert structured["mfa_code"] == "***" and structured["request_id"] == "activation/grp-ops/member/alice"
    assert structured["evidence"] == {"method": "totp", "code": "***", "nested": [{"token": "***"}]}
    assert structured["headers"] == {"Authorization": "***"} and structured["status_code"] == 200
    assert stdlib["client_secret"] == "***" and stdlib["smtp_password"] == "***" and stdlib["event"] == "stdlib too"
    for secret in ("123456", "654321", "eyJ", "s3cret", '"pw"'):
        assert secret not in json_logs.getvalue()


# --- what an activity's input tells ------------------------------------------------


def test_fields_from_activity_inputs():
    change = AccessChange(
        request_id="r1",
        run_key="r1#run",
        group_id="grp-dev",
        access=AccessType.member,
        principal_id="alice",
        at=NOW,
        final_state=State.expired,
    )
    assert input_fields([change]) == {
        "request_id": "r1",
        "group_id": "grp-dev",
        "access": "member",
        "principal_id": "alice",
        "state": "expired",
    }
    admit = AdmitInput(
        request_id="r2",
        run_key="r2#run",
        at=NOW,
        request=ActivationRequest(
            group_id="grp-ops", access=AccessType.owner, principal_id="bob", mfa=MfaEvidence(code="123456")
        ),
    )
    assert input_fields([admit]) == {"request_id": "r2", "group_id": "grp-ops", "access": "owner", "principal_id": "bob"}
    record = AuditRecord(at=NOW, action="request_approved", request_id="r3", group_id="grp-ops", principal_id="carol")
    assert input_fields([record]) == {
        "request_id": "r3",
        "group_id": "grp-ops",
        "principal_id": "carol",
        "action": "request_approved",
    }
    plan = AssignmentPlan(
        assignment_id="a1",
        group_id="grp-dev",
        access=AccessType.member,
        principal_id="dave",
        kind="active",
        starts_at=NOW,
        ends_at=NOW + timedelta(days=1),
        created_by="admin",
    )
    assert input_fields([AssignmentEnd(plan=plan, at=NOW)]) == {
        "assignment_id": "a1",
        "group_id": "grp-dev",
        "access": "member",
        "principal_id": "dave",
    }
    assert input_fields(["text", 3, {"group_id": "x"}, None]) == {}


# --- a real activation -----------------------------------------------------------


@pytest_asyncio.fixture
async def skipping_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    await register_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


async def test_activity_and_workflow_lines_carry_their_context(skipping_env, demo, json_logs):
    code = current_code(await demo.mfa_secret("alice"))
    async with running_worker(skipping_env, demo) as pim:
        rid = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=AccessType.member,
                principal_id="alice",
                duration=timedelta(hours=2),
                justification="INC-42 database failover",
                mfa=MfaEvidence(code=code),
            )
        )
        await settled(pim, rid, State.pending_approval)
        await pim.approve(rid, "bob", "approved for INC-42")
        await settled(pim, rid, State.active)
        await pim.deactivate(rid, "admin", "test over")
        await settled(pim, rid, State.deactivated)
        run_id = (await skipping_env.client.get_workflow_handle(rid).describe()).run_id

    logged = lines(json_logs)
    by_event = {}
    for line in logged:
        by_event.setdefault(line["event"], []).append(line)
    context = {
        "workflow_id": rid,
        "run_id": run_id,
        "request_id": rid,
        "group_id": "grp-ops",
        "access": "member",
        "principal_id": "alice",
    }
    granted = by_event["access granted"][0]
    assert granted.items() >= {**context, "activity": "grant_access", "attempt": 1, "level": "info"}.items()
    revoked = by_event["access revoked"][0]
    assert revoked.items() >= {**context, "activity": "close_activation", "state": "deactivated"}.items()
    admitted = by_event["request admitted"][0]  # a local activity
    assert admitted.items() >= {**context, "activity": "admit_request"}.items()
    # Workflow lines: workflow.logger's `extra` and the context Temporal adds, as fields.
    states = [line for line in by_event["activation state"] if line.get("workflow_id") == rid]
    assert [line["state"] for line in states] == [
        "validating",
        "pending_approval",
        "activating",
        "active",
        "revoking",
        "deactivated",
    ]
    assert all(
        line["request_id"] == rid and line["run_id"] == run_id and line["workflow_type"] == "GroupActivation" for line in states
    )
    # Context stays with its activity: the notification dispatcher's lines carry none.
    notifications = by_event["notification"]
    assert notifications and not any("activity" in line or "attempt" in line for line in notifications)
    assert f'"{code}"' not in json_logs.getvalue()
