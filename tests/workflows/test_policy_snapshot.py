"""A policy change never changes how a running request is decided: the workflow
keeps the policy it was admitted under and its status says which version; the
next request uses the new one. A change that makes the policy stricter still
stops the grant: the grant re-checks the approvals against the policy in force."""

from __future__ import annotations

import time
from datetime import timedelta

from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, ReviewDecision, State
from pim.identity.totp import current_code
from pim.operations import AdminContext
from pim.operations.policies import set_policy
from tests.conftest import TEST_SIGNER, running_worker
from tests.polling import settled
from tests.workflows.test_approval import JUSTIFICATION, after_signal, decisions, refusals

NEW_APPROVERS = 'activation.approval=[{"approvers":["carol"]}]'


async def alice_requests_ops(pim, demo, *, mfa_offset: float = 0.0) -> str:
    # A second request in the same 30 s uses the next TOTP step (a code is accepted once).
    code = current_code(await demo.mfa_secret("alice"), time.time() + mfa_offset)
    rid = await pim.start(
        ActivationRequest(
            group_id="grp-ops",
            access=AccessType.member,
            principal_id="alice",
            duration=timedelta(hours=2),
            justification=JUSTIFICATION,
            mfa=MfaEvidence(code=code),
        )
    )
    await settled(pim, rid)
    return rid


async def test_running_request_keeps_its_policy_version_and_the_next_one_uses_the_new(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await alice_requests_ops(pim, demo)
        before = await pim.status(rid)
        assert before.state == State.pending_approval
        assert before.policy_version == 2  # onboarding wrote 1, the seed's approval stage 2
        assert [s.approvers for s in before.stages] == [["bob"]]

        now = [await time_env.get_current_time()]
        ctx = AdminContext(
            demo, "admin", temporal=time_env.client, task_queue=pim.task_queue, clock=lambda: now[0], signer=TEST_SIGNER
        )
        version = await set_policy(ctx, "grp-ops", AccessType.member, [NEW_APPROVERS])
        assert version == 3
        policy, stored_version = await demo.policy("grp-ops", AccessType.member)
        assert stored_version == 3 and policy.activation.approval[0].approvers == ["carol"]
        changed = [r for r in await demo.audit(group_id="grp-ops") if r.action == "policy_changed"]
        assert [(r.actor, r.details["version"]) for r in changed] == [("admin", 3)]
        assert changed[0].details["changes"]["activation.approval"] == {
            "old": [{"approvers": ["bob"], "required": 1}],
            "new": [{"approvers": ["carol"], "required": 1}],
        }

        during = await after_signal(time_env, pim, rid)
        assert during.state == State.pending_approval
        assert during.policy_version == 2
        assert [s.approvers for s in during.stages] == [["bob"]]

        # carol, the new policy's approver, is not an approver of this request.
        await pim.approve(rid, "carol", "the new policy names me")
        refused = await after_signal(time_env, pim, rid)
        assert refused.state == State.pending_approval and decisions(refused) == []
        assert refusals(refused, "approve", "carol") == ["approve refused: carol is not an approver of the current stage"]
        assert not await demo.has_membership("grp-ops", AccessType.member, "alice")

        # bob, the approver of version 2, still decides it, but the policy in force no
        # longer accepts his approval: the grant re-checks it and refuses.
        await pim.approve(rid, "bob", "failover approved")
        ended = await after_signal(time_env, pim, rid)
        assert ended.state == State.failed and ended.policy_version == 2
        assert decisions(ended) == [("bob", ReviewDecision.approve, "failover approved")]
        assert "policy_stricter" in (ended.end_reason or "") or "now needs" in (ended.end_reason or "")
        assert not await demo.has_membership("grp-ops", AccessType.member, "alice")
        # The refusal, the decision and the refused grant are audited against the request.
        audit = await demo.audit(request_id=rid)
        lines = [(r.action, r.actor, r.details.get("claimed_actor")) for r in audit]
        assert ("refused", "unverified", "carol") in lines and ("request_approved", "bob", None) in lines
        assert lines.index(("refused", "unverified", "carol")) < lines.index(("request_approved", "bob", None))
        refused_grant = [r for r in audit if r.action == "grant_refused"]
        assert [v["code"] for v in refused_grant[0].details["violations"]] == ["policy_stricter"]

        # A new request is admitted under version 3: carol approves, bob no longer can.
        second = await alice_requests_ops(pim, demo, mfa_offset=30)
        fresh = await pim.status(second)
        assert fresh.state == State.pending_approval, fresh.violations
        assert fresh.policy_version == 3
        assert [s.approvers for s in fresh.stages] == [["carol"]]
        await pim.approve(second, "bob", "approving as before")
        st = await after_signal(time_env, pim, second)
        assert st.state == State.pending_approval
        assert refusals(st, "approve", "bob") == ["approve refused: bob is not an approver of the current stage"]
        await pim.approve(second, "carol", "approved under the new policy")
        st = await after_signal(time_env, pim, second)
        assert st.state == State.active and st.policy_version == 3
        assert decisions(st) == [("carol", ReviewDecision.approve, "approved under the new policy")]
