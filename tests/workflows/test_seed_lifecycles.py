"""The demo seed writes its time-bound assignments straight to the store; `pim dev`
gives each its lifecycle workflow, once."""

from __future__ import annotations

from functools import partial

from pim.domain.assignments import AssignmentStatus, assignment_workflow_id
from pim.operations import AdminContext
from pim.operations.assignments import start_missing_lifecycles
from tests.conftest import TEST_SIGNER, running_worker
from tests.polling import eventually


async def test_seeded_time_bound_assignments_get_one_lifecycle_each(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        ctx = AdminContext(demo, "seed", temporal=time_env.client, task_queue=pim.task_queue, signer=TEST_SIGNER)
        time_bound = {a.id: a for a in await demo.assignments() if a.ends_at is not None}
        assert {(a.principal_id, a.access) for a in time_bound.values()} == {("alice", "member"), ("bob", "owner")}

        assert sorted(await start_missing_lifecycles(ctx)) == sorted(time_bound)
        assert await start_missing_lifecycles(ctx) == []  # already running: left alone

        for assignment_id, row in time_bound.items():
            handle = time_env.client.get_workflow_handle(assignment_workflow_id(assignment_id))
            status = await eventually(  # it takes effect at once: its start has passed
                partial(handle.query, "status", result_type=AssignmentStatus),
                until=lambda s: s.state == "active",
                what=f"assignment {assignment_id} to take effect",
            )
            assert status.state == "active" and status.ends_at == row.ends_at
