"""A request that needs no approval and starts now, with the built-in directory,
is granted by its admission: the checks, the claim, the grant row, the
membership and both audit lines in one store transaction, so nothing can change
between the check and the grant. Admission is retried like any activity: an
attempt run again after one that did everything but report back grants nothing
more, and reports what the store holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import ActivityEnvironment

from activities.admission import AdmissionActivities
from pim.domain.actors import Action
from pim.domain.models import AccessType, ActivationRequest
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.domain.status import AdmitInput
from tests.conftest import TEST_PROOFS, signed

MEMBER = AccessType.member


def dev_request(user: str, **fields) -> ActivationRequest:
    request = ActivationRequest(
        group_id="grp-dev",
        access=MEMBER,
        principal_id=user,
        duration=timedelta(hours=1),
        justification="INC-7 hotfix rollout",
        **fields,
    )
    return ActivationRequest.model_validate(signed(request, user, Action.request, request.workflow_id))


def admission_input(request: ActivationRequest) -> AdmitInput:
    run_key = f"{request.workflow_id}#{uuid.uuid4()}"
    return AdmitInput(request_id=request.workflow_id, run_key=run_key, request=request, at=datetime.now(UTC))


async def test_an_immediate_request_is_granted_with_its_claim_and_a_retry_grants_nothing_more(demo):
    admit = AdmissionActivities(demo, TEST_PROOFS, mfa_seal_key=None, grant_locally=True).admit_request
    data = admission_input(dev_request("dave"))
    first = await ActivityEnvironment().run(admit, data)
    assert first.admitted and first.granted_at == data.at and first.written_at is not None
    assert await demo.has_membership("grp-dev", MEMBER, "dave")
    [grant] = await demo.live_grants("grp-dev", MEMBER, datetime.now(UTC), "dave")
    assert (grant.source_kind, grant.source_id, grant.ends_at) == ("activation", data.run_key, data.at + timedelta(hours=1))

    # The policy now asks for approval; the attempt that granted is run again.
    stricter = Policy(activation=ActivationSettings(approval=[ApprovalStage(approvers=["bob"])]))
    await demo.set_policy("grp-dev", MEMBER, stricter, by="test")
    again = await ActivityEnvironment().run(admit, data)
    assert again.admitted and again.written_at is not None, "the store holds the grant: the retry says so"
    assert len(await demo.live_grants("grp-dev", MEMBER, datetime.now(UTC), "dave")) == 1
    lines = await demo.audit(request_id=data.request_id)
    assert [line.action for line in lines] == ["activation_requested", "access_granted"]
    assert (await demo.verify_audit()).ok


async def test_admission_grants_nothing_when_approval_a_later_start_or_another_directory_comes_between(demo):
    local = AdmissionActivities(demo, TEST_PROOFS, mfa_seal_key=None, grant_locally=True).admit_request
    elsewhere = AdmissionActivities(demo, TEST_PROOFS, mfa_seal_key=None, grant_locally=False).admit_request
    cases = [
        ("starts later", local, dev_request("dave", start_at=datetime.now(UTC) + timedelta(hours=1))),
        ("LDAP or Graph", elsewhere, dev_request("dave")),
        ("dry run", local, dev_request("dave", validate_only=True)),
        ("approval", local, dev_request("dave")),
    ]
    for case, admit, request in cases:
        if case == "approval":
            approval = Policy(activation=ActivationSettings(approval=[ApprovalStage(approvers=["bob"])]))
            await demo.set_policy("grp-dev", MEMBER, approval, by="test")
        data = admission_input(request)
        admission = await ActivityEnvironment().run(admit, data)
        assert admission.admitted, (case, admission.violations)
        assert admission.written_at is None and admission.granted_at is None, case
        assert not await demo.has_membership("grp-dev", MEMBER, "dave"), case
        await demo.release_activation(data.run_key)
