"""Every failure is one line on stderr, `error: ...`, with exit code 2 for
malformed arguments and 1 for a refusal or a failure; recognised by what failed
(Temporal unreachable, a store without schema, encrypted payloads without keys,
a request that has ended), whatever the wording of the underlying error."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from pim.domain.models import AccessType, ActivationRequest, State
from pim.runtime.codec import data_converter
from pim.runtime.settings import PimSettings
from tests.cli.conftest import UNREACHABLE, Pim, ok, one_error_line
from tests.conftest import running_worker
from tests.polling import settled

PIM = str(Path(sys.executable).parent / "pim")
CANNOT_REACH = f"error: cannot reach Temporal at {UNREACHABLE} (is `pim dev` or the server running?)"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "activation/grp-ops/member/alice"],
        ["requests", "--json"],
        ["request", "grp-ops", "--as", "alice", "--duration", "2h"],
        ["approve", "activation/grp-ops/member/alice", "--as", "bob", "--justification", "ok"],
        ["cancel", "activation/grp-ops/member/alice", "--as", "alice"],
        ["reconcile"],
    ],
)
def test_an_unreachable_temporal_is_one_line_and_exit_1(pim, args):
    assert one_error_line(pim(*args), 1) == CANNOT_REACH


@pytest.mark.parametrize("args", [["groups", "list"], ["audit", "--json"], ["members", "grp-ops"], ["mfa", "code", "alice"]])
def test_a_store_without_schema_says_to_run_db_upgrade(pim, args):
    Path(pim.database_url.removeprefix("sqlite+aiosqlite:///")).touch()  # a database file, empty
    line = one_error_line(pim(*args), 1)
    assert line == f"error: the store at {pim.database_url} has no schema: run `pim db upgrade` (or `pim dev`)"
    ok(pim("db", "upgrade"))
    assert pim(*args).exit_code in (0, 1) and "no schema" not in pim(*args).stderr


def test_a_missing_store_and_a_password_in_a_message(pim):
    assert "error: no store at " in one_error_line(pim("groups", "list"), 1)
    unreachable = Pim("postgresql+asyncpg://pim:s3cret-pw@127.0.0.1:1/pim")
    line = one_error_line(unreachable("groups", "list"), 1)
    assert line.startswith("error: cannot reach the store at postgresql+asyncpg://pim:***@127.0.0.1:1/pim")


@pytest.mark.parametrize(
    "args, message",
    [
        (["request", "grp-ops", "--as", "alice", "--duration", "2 fortnights"], "duration: '2 fortnights' is not a duration"),
        (["request", "grp-ops", "--as", "alice", "--ticket", "OPS-123"], "--ticket: use SYSTEM:NUMBER"),
        (["request", "grp-ops", "--as", "alice", "--start-at", "2026-12-01T09:00"], "--start-at: give a time zone"),
        (["request", "grp-ops", "--as", "alice", "--mfa-code", "1", "--mfa-token", "a.b.c"], "use one of --mfa-code"),
        (
            ["assign", "grp-ops", "bob", "--eligible", "--for", "30d", "--until", "2027-01-01T00:00:00Z", "--as", "root"],
            "exactly one",
        ),
        (["assign", "grp-ops", "bob", "--eligible", "--active", "--permanent", "--as", "root"], "exactly one of --eligible"),
        (["assignments", "extend", "asg-1", "--for", "soon", "--as", "root"], "--for: 'soon' is not a duration"),
        (["audit", "--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 instant"),
        (["extend", "activation/grp-ops/member/alice", "--as", "alice", "--duration", "-1h"], "duration"),
        (["dev", "--seed", "everything"], "--seed: unknown data set 'everything'"),
    ],
)
def test_malformed_arguments_exit_2(pim, args, message):
    line = one_error_line(pim(*args), 2)
    assert message in line


def test_a_half_given_tls_pair_exits_2(pim, monkeypatch, tmp_path):
    monkeypatch.setenv("PIM_TEMPORAL_TLS_CERT", str(tmp_path / "client.pem"))
    line = one_error_line(pim("status", "activation/grp-ops/member/alice"), 2)
    assert line == "error: PIM_TEMPORAL_TLS_CERT and PIM_TEMPORAL_TLS_KEY go together"


# --- against the dev server -----------------------------------------------------------------------------


async def run_pim(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`pim` in a subprocess, without blocking the loop the worker runs on."""
    process = await asyncio.create_subprocess_exec(
        PIM, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_env(dev_env, task_queue: str, store, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIM_")}
    target = dev_env.client.service_client.config.target_host
    return {**env, "PIM_TEMPORAL_ADDRESS": target, "PIM_TASK_QUEUE": task_queue, "PIM_DATABASE_URL": store.url, **extra}


def dry_run(principal: str) -> ActivationRequest:
    return ActivationRequest(
        group_id="grp-dev",
        access=AccessType.member,
        principal_id=principal,
        duration=timedelta(hours=1),
        justification="deploy release 4.2",
        validate_only=True,
    )


async def test_acting_on_a_request_that_has_ended(dev_env, demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with running_worker(dev_env, demo) as pim:
        request_id = await pim.start(dry_run("alice"))
        assert (await pim.result(request_id)).state == State.canceled  # a dry run ends once validated
        env = cli_env(dev_env, pim.task_queue, demo)
        for args in (
            ["cancel", request_id, "--as", "alice"],
            ["deactivate", request_id, "--as", "alice"],
            ["extend", request_id, "--as", "alice", "--duration", "1h"],
            ["approve", request_id, "--as", "bob", "--justification", "too late"],
        ):
            code, out, err = await run_pim(env, *args)
            assert (code, out, err) == (1, "", "error: the request has already ended (see `pim status`)\n"), args
        code, out, _ = await run_pim(env, "status", request_id)
        assert code == 0 and out.startswith(f"{request_id}: canceled")
        code, out, err = await run_pim(env, "cancel", "activation/grp-dev/member/nobody", "--as", "nobody")
        assert code == 1 and out == "" and err.startswith("error: not found: ") and err.count("\n") == 1


async def test_encrypted_payloads_without_the_keys(dev_env, demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    encrypting = Client(**{**dev_env.client.config(), "data_converter": data_converter(PimSettings(payload_keys=keys))})
    async with running_worker(WorkflowEnvironment.from_client(encrypting), demo) as pim:  # workers and requesters encrypt
        request_id = await pim.start(dry_run("dave"))
        await pim.result(request_id)
        code, out, err = await run_pim(cli_env(dev_env, pim.task_queue, demo), "status", request_id)
        assert (code, out, err) == (1, "", "error: the payloads are encrypted: set PIM_PAYLOAD_KEYS as the workers have it\n")
        code, out, _ = await run_pim(cli_env(dev_env, pim.task_queue, demo, PIM_PAYLOAD_KEYS=keys), "status", request_id)
        assert code == 0 and out.startswith(f"{request_id}: canceled")


async def test_requests_is_a_table_and_json(dev_env, demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with running_worker(dev_env, demo) as pim:
        request_id = await pim.start(
            ActivationRequest(
                group_id="grp-dev",
                access=AccessType.member,
                principal_id="dave",
                duration=timedelta(hours=1),
                justification="deploy release 4.2",
            )
        )
        await settled(pim, request_id, State.active, timeout=10)
        env = cli_env(dev_env, pim.task_queue, demo)
        for _ in range(100):  # visibility is eventually consistent
            code, out, err = await run_pim(env, "requests", "--principal", "dave", "--state", "active")
            if request_id in out:
                break
            await asyncio.sleep(0.1)
        assert code == 0, err
        assert [line.split() for line in out.splitlines()] == [
            ["request", "state", "access", "group", "principal"],
            [request_id, "active", "member", "grp-dev", "dave"],
        ]
        code, out, _ = await run_pim(env, "requests", "--principal", "dave", "--state", "active", "--json")
        assert json.loads(out) == [
            {
                "request_id": request_id,
                "state": "active",
                "group_id": "grp-dev",
                "access": "member",
                "principal_id": "dave",
                "running": True,
            }
        ]
        code, out, err = await run_pim(env, "requests", "--group", "grp-'dev")
        assert (code, out) == (2, "") and err.startswith("error: invalid filter value") and err.count("\n") == 1
        await pim.deactivate(request_id, "admin", "test over")
        assert (await pim.result(request_id)).state == State.deactivated
