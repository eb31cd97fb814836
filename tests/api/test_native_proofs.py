"""`POST /api/proofs`: the API signs a wire payload for the caller, as its actor, and
the caller sends it to Temporal themselves (a raw client here, as the `temporal` CLI
would). The API signs for the caller only, never a sign-in the caller claims, never
an administrative action; the workflows refuse anything altered after signing."""

from __future__ import annotations

import os
import time

from pim.domain.models import AccessType, State
from pim.identity.totp import current_code
from tests.api.native import answered, refused
from tests.polling import eventually, settled

ALICE_OPS = "activation/grp-ops/member/alice"
REQUEST = {
    "group_id": "grp-ops",
    "access": "member",
    "principal_id": "alice",
    "duration": "PT2H",
    "justification": "INC-42 database failover",
}


def proof_of(action: str, target: str, payload: dict) -> dict:
    return {"action": action, "target": target, "payload": payload}


async def test_signed_payloads_start_a_request_and_approve_it_through_a_raw_temporal_client(api):
    alice, bob = await api.sign_in("alice"), await api.sign_in("bob")
    temporal = api.pim.temporal

    signed = answered(await api.post(alice, "/api/proofs", json=proof_of("request", ALICE_OPS, REQUEST)))["payload"]
    assert signed["proof"] and signed["principal_id"] == "alice"
    # No MFA in the payload: the API vouches for alice's own multi-factor sign-in, from her token.
    assert signed["mfa"]["method"] == "signin" and signed["mfa"]["amr"] == ["otp", "mfa"]
    await temporal.start_workflow("GroupActivation", signed, id=ALICE_OPS, task_queue=api.pim.task_queue)
    assert (await settled(api.pim, ALICE_OPS, State.pending_approval)).principal_id == "alice"

    approval = proof_of("approve", ALICE_OPS, {"approver_id": "bob", "justification": "failover approved"})
    decision = answered(await api.post(bob, "/api/proofs", json=approval))["payload"]
    handle = temporal.get_workflow_handle(ALICE_OPS)

    # Altered after signing: the workflow refuses it, and the request waits on.
    await handle.signal("approve", {**decision, "justification": "approved, and more"})

    async def refusals() -> list[str]:
        return [e.note or "" for e in (await api.pim.status(ALICE_OPS)).events if "refused" in (e.note or "")]

    [note] = await eventually(refusals, what="the altered approval refused")
    assert "proof_mismatch" in note and (await api.pim.status(ALICE_OPS)).state == State.pending_approval

    await handle.signal("approve", decision)
    active = await settled(api.pim, ALICE_OPS, State.active)
    [(approver, justification)] = [(d.approver_id, d.justification) for d in active.stages[0].decisions]
    assert (approver, justification) == ("bob", "failover approved")
    assert await api.store.has_membership("grp-ops", AccessType.member, "alice")


async def test_the_api_signs_for_the_caller_only(api):
    alice = await api.sign_in("alice")
    for action, target, payload, field in [
        ("approve", ALICE_OPS, {"approver_id": "bob"}, "approver_id"),
        ("request", "activation/grp-ops/member/bob", {**REQUEST, "principal_id": "bob"}, "principal_id"),
        ("cancel", "activation/grp-ops/member/bob", {"by": "bob"}, "by"),
        ("extend", ALICE_OPS, {"by": "admin", "duration": "PT1H"}, "by"),
    ]:
        error = refused(await api.post(alice, "/api/proofs", json=proof_of(action, target, payload)), 403)
        assert error["codes"] == ["not_authorized"] and f"payload.{field}" in error["message"]
    refused(await api.post(None, "/api/proofs", json=proof_of("approve", ALICE_OPS, {"approver_id": "bob"})), 401)


async def test_only_the_api_vouches_for_a_sign_in(api):
    alice = await api.sign_in("alice")
    claimed = {"method": "signin", "auth_time": int(time.time()), "amr": ["otp", "mfa"]}
    error = refused(await api.post(alice, "/api/proofs", json=proof_of("request", ALICE_OPS, {**REQUEST, "mfa": claimed})), 403)
    assert "payload.mfa.method" in error["message"]
    # A service principal signed in with no user: no sign-in to vouch for, so none is added.
    service = await api.service_token()
    own = {**REQUEST, "principal_id": "svc-directory-sync"}
    signed = answered(
        await api.post(service, "/api/proofs", json=proof_of("request", "activation/grp-ops/member/svc-directory-sync", own))
    )
    assert signed["payload"]["mfa"] is None


async def test_a_totp_code_is_sealed_before_it_is_signed(api):
    alice = await api.sign_in("alice")
    api.services.pim.mfa_seal_key = os.urandom(32)  # the API's PIM_MFA_SEAL_KEY
    code = current_code(await api.store.mfa_secret("alice"))
    body = proof_of("request", ALICE_OPS, {**REQUEST, "mfa": {"method": "totp", "code": code}})
    response = await api.post(alice, "/api/proofs", json=body)
    mfa = answered(response)["payload"]["mfa"]
    assert mfa["method"] == "totp" and mfa["sealed"] is True and code not in response.text

    sealed = {"method": "totp", "code": mfa["code"], "sealed": True}  # a seal sent back: only the API seals
    body = proof_of("request", ALICE_OPS, {**REQUEST, "mfa": sealed})
    assert refused(await api.post(alice, "/api/proofs", json=body), 400)["targets"] == ["payload.mfa.sealed"]


async def test_administrative_actions_and_payloads_that_do_not_fit_are_refused_naming_the_field(api):
    bob = await api.sign_in("bob")
    decision = {"approver_id": "bob"}
    cases = [
        (
            proof_of("extend_assignment", "assignment/asg-0123456789ab", {"by": "bob", "ends_at": "2030-01-01T00:00:00Z"}),
            "action",
        ),
        (proof_of("admin", "pim/admin", {"actor": "bob"}), "action"),
        (proof_of("approve", "assignment/asg-0123456789ab", decision), "target"),
        (proof_of("approve", ALICE_OPS, {**decision, "proof": "x.y.z"}), "payload.proof"),
        (proof_of("approve", ALICE_OPS, {**decision, "colour": "blue"}), "payload.colour"),
        (proof_of("approve", ALICE_OPS, {}), "payload.approver_id"),
        (proof_of("review", ALICE_OPS, {**decision, "decision": "maybe"}), "payload.decision"),
        (proof_of("extend", ALICE_OPS, {"by": "bob", "duration": "soon"}), "payload.duration"),
        (proof_of("request", "activation/grp-dev/member/bob", {**REQUEST, "principal_id": "bob"}), "target"),
        ({"action": "approve", "target": ALICE_OPS}, "payload"),
    ]
    for body, field in cases:
        error = refused(await api.post(bob, "/api/proofs", json=body), 400)
        assert field in error["targets"], (body, error)
        assert "blue" not in error["message"] and "soon" not in error["message"] and "maybe" not in error["message"]
