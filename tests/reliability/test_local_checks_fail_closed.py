"""A check the workflow runs as a local activity may fail for good (the store is
down through every retry). The workflow then gives its own verdict: the signal is
refused, the request goes on waiting. It never fails the workflow: a failed
workflow would leave its claim behind and answer nobody."""

from __future__ import annotations

from temporalio import activity

from activities.proofs import ProofActivities
from pim.domain.actors import ActorCheck, ActorVerdict
from pim.domain.models import AccessType, State
from tests.conftest import running_worker
from tests.workflows.test_approval import after_signal, decisions, refusals, request_ops


@activity.defn(name="verify_actor")
async def verify_actor_store_down(self, check: ActorCheck) -> ActorVerdict:
    raise RuntimeError("the store is down")


async def test_an_approval_whose_proof_cannot_be_checked_is_refused_and_the_request_waits(time_env, demo, monkeypatch):
    monkeypatch.setattr(ProofActivities, "verify_actor", verify_actor_store_down)
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        assert (await pim.status(rid)).state == State.pending_approval

        await pim.approve(rid, "bob", "failover approved")
        waiting = await after_signal(time_env, pim, rid)
        assert waiting.state == State.pending_approval
        assert decisions(waiting) == []
        [refusal] = refusals(waiting, "approve", "bob")
        assert refusal.startswith("approve refused: proof_unverifiable: ") and "the store is down" in refusal
        assert not await demo.has_membership("grp-ops", AccessType.member, "bob")
        assert not await demo.has_membership("grp-ops", AccessType.member, "alice")
