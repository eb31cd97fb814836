"""The README's second walk-through, run line by line: an administrator sets up
a tenant from nothing with the command line alone. Lines marked "# refused"
must fail with a one-line error; every other line must succeed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from pim.domain.models import AccessType
from tests.conftest import CLI_SETTINGS, running_worker

README = Path(__file__).parents[2] / "README.md"
MARKER = "<!-- admin-walkthrough"


def walkthrough_lines() -> list[str]:
    text = README.read_text()
    block = text[text.index(MARKER) :]
    block = block[block.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("```")]
    return [line for line in block.splitlines() if line.strip()]


async def sh(env: dict, line: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", line, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def test_an_administrator_sets_up_a_tenant_from_nothing(dev_env, store):
    lines = walkthrough_lines()
    assert len(lines) > 20 and lines[0].startswith("pim bootstrap")
    async with running_worker(dev_env, store) as pim:
        env = {
            **os.environ,
            **CLI_SETTINGS,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PIM_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "PIM_TASK_QUEUE": pim.task_queue,
            "PIM_DATABASE_URL": store.url,
        }
        for line in lines:
            code, out, err = await sh(env, line)
            if "# refused" in line:
                assert code == 1, f"{line}\n{out}{err}"
                assert re.fullmatch(r"error: [^\n]+\n", err), err  # one clear line
            else:
                assert code == 0, f"{line}\n{out}{err}"

        # What the administrator set up holds: ben activated the database group after root approved.
        assert await store.has_membership("grp-db", AccessType.member, "ben")
        assert await store.has_membership("grp-web", AccessType.member, "ann")
        assert not await store.has_membership("grp-db", AccessType.member, "grp-team")
        code, out, _ = await sh(env, "pim audit --group grp-db --json")
        actions = [(row["action"], row["actor"]) for row in json.loads(out)]
        for expected in [
            ("group_onboarded", "root"),
            ("assignment_created", "root"),
            ("policy_changed", "root"),
            ("activation_requested", "ben"),
            ("request_approved", "root"),
            ("access_granted", "ben"),
        ]:
            assert expected in actions, expected
        refusals = [row["details"]["reason"] for row in json.loads(out) if row["action"] == "refused"]
        assert any("role-assignable" in reason for reason in refusals)
        assert any("own request" in reason for reason in refusals)
        for request_id in ("activation/grp-db/member/ben", "activation/grp-web/member/ann"):
            await pim.deactivate(request_id, "root", "walk-through over")
