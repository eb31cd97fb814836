"""Record one history per path of `GroupActivation` and of `AssignmentLifecycle`
into tests/histories/<workflow>.<path>.<version>.json, where <version> is the
project's version in pyproject.toml.

    .venv/bin/python -m tests.histories.record

Replaying every file (tests/workflows/test_replay.py) proves that running
workflows survive a change of the workflow code. The rule (docs/architecture.md):
until version 1.0.0, a change of workflow commands deletes the histories and
records them anew; from 1.0.0 on, such a change goes behind `workflow.patched`
and the older files stay. A file that already exists is never overwritten.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import tomllib
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pim.domain.assignments import assignment_workflow_id
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence
from pim.identity.totp import current_code
from pim.operations import AdminContext
from pim.operations.assignments import create_assignment, extend_assignment, remove_assignment, renew_assignment
from pim.operations.seed import seed_demo
from pim.runtime.temporal import find_binary, register_search_attributes
from pim.store import Store
from pim.store.database import upgrade_async
from tests.conftest import TEST_SECRETS, TEST_SIGNER, running_worker

HERE = Path(__file__).parent
RELEASE = tomllib.loads((HERE.parent.parent / "pyproject.toml").read_text())["project"]["version"]


def dev_request(**overrides) -> ActivationRequest:
    fields = dict(
        group_id="grp-dev",
        access=AccessType.member,
        principal_id="alice",
        duration=timedelta(hours=1),
        justification="deploy hotfix 1.2.3",
    )
    return ActivationRequest(**{**fields, **overrides})


async def ops_request(store: Store) -> ActivationRequest:
    code = current_code(await store.mfa_secret("alice"))
    return ActivationRequest(
        group_id="grp-ops",
        access=AccessType.member,
        principal_id="alice",
        duration=timedelta(hours=2),
        justification="INC-42 database failover",
        mfa=MfaEvidence(code=code),
    )


async def approved_and_expired(env, pim, store):
    rid = await pim.start(await ops_request(store))
    await env.sleep(timedelta(minutes=10))
    await pim.approve(rid, "bob", "approved for INC-42")
    return rid


async def denied(env, pim, store):
    rid = await pim.start(await ops_request(store))
    await env.sleep(timedelta(seconds=5))
    await pim.deny(rid, "bob", "not during the freeze")
    return rid


async def approval_expired(env, pim, store):
    return await pim.start(await ops_request(store))


async def canceled(env, pim, store):
    rid = await pim.start(await ops_request(store))
    await env.sleep(timedelta(seconds=5))
    await pim.cancel(rid, "alice", "fixed without it")
    return rid


async def deactivated(env, pim, store):
    rid = await pim.start(dev_request())
    await env.sleep(timedelta(minutes=6))
    await pim.deactivate(rid, "alice", "done")
    return rid


async def extended(env, pim, store):
    rid = await pim.start(dev_request())
    await env.sleep(timedelta(minutes=10))
    await pim.extend(rid, "alice", timedelta(hours=1), "the migration runs late")
    return rid


async def rejected(env, pim, store):
    return await pim.start(dev_request(principal_id="bob"))


async def scheduled(env, pim, store):
    start = (await env.get_current_time()) + timedelta(hours=2)
    return await pim.start(dev_request(start_at=start))


async def malformed(env, pim, store):
    handle = await env.client.start_workflow(
        "GroupActivation", {"group_id": "grp-dev", "access": "admin"}, id="activation/malformed", task_queue=pim.task_queue
    )
    return handle.id


SCENARIOS = [approved_and_expired, denied, approval_expired, canceled, deactivated, extended, rejected, scheduled, malformed]


# --- AssignmentLifecycle -------------------------------------------------------


async def _admin(env, pim, store) -> tuple[AdminContext, list]:
    """An administrator whose clock follows the test server (now[0], refreshed by the scenario)."""
    now = [await env.get_current_time()]
    return AdminContext(
        store, "admin", temporal=env.client, task_queue=pim.task_queue, clock=lambda: now[0], signer=TEST_SIGNER
    ), now


async def assignment_expired(env, pim, store):
    """Eligible for 20 days: both reminders, then the end."""
    ctx, _ = await _admin(env, pim, store)
    aid = await create_assignment(
        ctx,
        "grp-ops",
        "dave",
        access=AccessType.member,
        kind="eligible",
        duration=timedelta(days=20),
        justification="covering the on-call rotation",
    )
    return assignment_workflow_id(aid)


async def assignment_extended(env, pim, store):
    """Active for 20 days, extended by 10 after the first reminder."""
    ctx, now = await _admin(env, pim, store)
    aid = await create_assignment(
        ctx, "grp-dev", "bob", access=AccessType.member, kind="active", duration=timedelta(days=20), justification="release train"
    )
    await env.sleep(timedelta(days=7))
    now[0] = await env.get_current_time()
    await extend_assignment(ctx, aid, extra=timedelta(days=10), justification="the train slipped")
    return assignment_workflow_id(aid)


async def assignment_removed(env, pim, store):
    ctx, now = await _admin(env, pim, store)
    aid = await create_assignment(
        ctx, "grp-dev", "bob", access=AccessType.member, kind="active", duration=timedelta(days=30), justification="contract work"
    )
    await env.sleep(timedelta(minutes=6))
    now[0] = await env.get_current_time()
    await remove_assignment(ctx, aid, reason="contract ended early")
    return assignment_workflow_id(aid)


async def assignment_renewed(env, pim, store):
    """Expired after a day, renewed 10 days later: the history of the second run."""
    ctx, now = await _admin(env, pim, store)
    aid = await create_assignment(
        ctx, "grp-dev", "bob", access=AccessType.member, kind="active", duration=timedelta(days=1), justification="release day"
    )
    await env.sleep(timedelta(days=11))
    now[0] = await env.get_current_time()
    await renew_assignment(ctx, aid, extra=timedelta(days=5), justification="next release")
    return assignment_workflow_id(aid)


ASSIGNMENT_SCENARIOS = [assignment_expired, assignment_extended, assignment_removed, assignment_renewed]


def history_path(scenario, target: Path = HERE) -> Path:
    name = scenario.__name__
    if name.startswith("assignment_"):
        return target / f"assignment_lifecycle.{name.removeprefix('assignment_')}.{RELEASE}.json"
    return target / f"group_activation.{name}.{RELEASE}.json"


async def record(target: Path = HERE) -> list[Path]:
    workdir = Path(tempfile.mkdtemp())
    written = []
    try:
        for scenario in SCENARIOS + ASSIGNMENT_SCENARIOS:
            path = history_path(scenario, target)
            if path.exists():
                continue  # a released history stays as it was recorded
            # A server per scenario: its clock starts at the real time, as the demo tenant does.
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=find_binary("temporal-test-server"), data_converter=pydantic_data_converter
            )
            await register_search_attributes(env.client, "default")
            url = f"sqlite+aiosqlite:///{workdir / scenario.__name__}.db"
            await upgrade_async(url)
            store = Store.open(url, secrets=TEST_SECRETS)
            await seed_demo(store)
            async with running_worker(env, store) as pim:
                rid = await scenario(env, pim, store)
                handle = env.client.get_workflow_handle(rid)
                async with env.time_skipping_unlocked():
                    await handle.result()
                history = await handle.fetch_history()
            await store.close()
            await env.shutdown()
            path.write_text(history.to_json())
            written.append(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return written


if __name__ == "__main__":
    from pim.runtime.process import hard_exit

    for path in asyncio.run(record()):
        print(path)
    hard_exit(0)
