"""Two approvals arriving together grant once: the workflow decides them one
after the other, and the second finds the request no longer pending."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowUpdateFailedError

from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.identity.totp import current_code
from tests.conftest import running_worker
from tests.polling import settled


async def test_two_approvers_approving_at_once_grant_once(time_env, demo):
    await demo.set_policy(
        "grp-ops",
        AccessType.member,
        Policy(activation=ActivationSettings(approval=[ApprovalStage(approvers=["bob", "carol"], required=1)], require_mfa=True)),
        by="admin",
    )
    async with running_worker(time_env, demo) as pim:
        request_id = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=AccessType.member,
                principal_id="alice",
                duration=timedelta(hours=1),
                justification="INC-42 database failover",
                mfa=MfaEvidence(code=current_code(await demo.mfa_secret("alice"))),
            )
        )
        await settled(pim, request_id, State.pending_approval)

        outcomes = await asyncio.gather(
            pim.review(request_id, "bob", "approve", "ok from bob"),
            pim.review(request_id, "carol", "approve", "ok from carol"),
            return_exceptions=True,
        )
        accepted = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
        assert len(accepted) == 1 and len(refused) == 1
        assert "not pending" in str(refused[0].cause)

        status = await settled(pim, request_id, State.active)
        assert status.state == State.active
        assert len(status.stages[0].decisions) == 1
        granted = [row for row in await demo.audit(request_id=request_id) if row.action == "access_granted"]
        assert len(granted) == 1
        assert [g.source_kind for g in await demo.live_grants("grp-ops", AccessType.member, status.granted_at, "alice")] == [
            "activation"
        ]
        await pim.deactivate(request_id, "admin", "test over")
