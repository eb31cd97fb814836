"""`pim status` on its quick path prints what the full path prints, text and JSON,
for a live request and for one that does not exist; `pim cancel` prints the
request after the cancel (`canceled`), not before it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from pim.cli import quick
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.identity.totp import current_code
from tests.conftest import CLI_SETTINGS, running_worker
from tests.polling import settled

PIM = str(Path(sys.executable).parent / "pim")
FULL_PATH = {"PIM_TEMPORAL_TLS": "false"}  # a connection setting: the full path, on the same plain connection


async def run_pim(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        PIM, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_quick_status_prints_what_the_full_path_prints_and_cancel_prints_canceled(dev_env, demo, tmp_path):
    async with running_worker(dev_env, demo) as pim:
        request_id = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=AccessType.member,
                principal_id="alice",
                duration=timedelta(hours=2),
                justification="INC-42 database failover, «ünïcode»",
                mfa=MfaEvidence(code=current_code(await demo.mfa_secret("alice"))),
            )
        )
        await settled(pim, request_id, State.pending_approval, timeout=10)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "TEMPORAL_"))}
        env = {
            **clean,
            **CLI_SETTINGS,
            "HOME": str(tmp_path),  # no Temporal profile of the developer's
            "PIM_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "PIM_TASK_QUEUE": pim.task_queue,
            "PIM_DATABASE_URL": demo.url,
        }
        assert await asyncio.to_thread(quick.answer, ["status", request_id], env) == 0  # the quick path is taken
        for args in (["status", request_id], ["status", request_id, "--json"], ["status", "activation/grp-ops/member/nobody"]):
            fast = await run_pim(env, *args)
            full = await run_pim({**env, **FULL_PATH}, *args)
            assert fast == full, args
        code, out, _ = await run_pim(env, "status", "--json", request_id)
        assert code == 0 and json.loads(out)["justification"] == "INC-42 database failover, «ünïcode»"
        assert out == (await pim.status(request_id)).model_dump_json(indent=2) + "\n"

        code, out, err = await run_pim(env, "cancel", request_id, "--as", "alice", "--reason", "not needed")
        assert code == 0, err
        assert out.startswith(f"{request_id}: canceled\n") and "reason: canceled by alice: not needed" in out
        assert (await pim.result(request_id)).state == State.canceled
