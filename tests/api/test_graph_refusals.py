"""What the Graph resources refuse, and how: Graph's status codes and envelope, with
the product's own codes in the details. Nobody approves their own request, acts in
someone else's name, decides a stage twice, or gets past the policy; a request that
ends on time leaves nothing behind."""

from __future__ import annotations

import time
from datetime import timedelta

import pyotp

from pim.api.errors import from_refusal
from pim.domain.models import AccessType
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.identity.totp import current_code
from pim.operations.requests import NoAnswer
from tests.api.harness import APPROVALS, REQUESTS, running_api
from tests.api.test_api_auth import assert_graph_error
from tests.api.test_graph_lifecycle import self_activate
from tests.polling import eventually


def detail_codes(response) -> list[str]:
    return [d["code"] for d in response.json()["error"].get("details", [])]


async def pending_request(api) -> str:
    created = await api.post(await api.sign_in("alice"), REQUESTS, json=self_activate())
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def test_nobody_approves_their_own_request(api):
    request_id = await pending_request(api)
    own = await api.patch(await api.sign_in("alice"), f"{APPROVALS}/{request_id}/stages/1", json={"reviewResult": "Approve"})
    assert_graph_error(own, 403, "Authorization_RequestDenied")
    assert detail_codes(own) == ["self_approval"]
    assert (await api.pim.status("activation/grp-ops/member/alice")).stages[0].decisions == []


async def test_someone_who_is_not_an_approver_of_the_stage_is_403(api):
    request_id = await pending_request(api)
    carol = await api.patch(
        await api.sign_in("carol"), f"{APPROVALS}/{request_id}/stages/1", json={"reviewResult": "Approve", "justification": "x"}
    )
    assert_graph_error(carol, 403, "Authorization_RequestDenied")  # not even allowed to see it


async def test_a_decided_stage_is_409_for_everyone(api):
    request_id = await pending_request(api)
    bob, admin = await api.sign_in("bob"), await api.sign_in("admin")
    stage = f"{APPROVALS}/{request_id}/stages/1"
    assert (await api.patch(bob, stage, json={"reviewResult": "Deny", "justification": "not now"})).status_code == 204
    again = await api.patch(bob, stage, json={"reviewResult": "Approve", "justification": "changed my mind"})
    assert_graph_error(again, 409, "Conflict")
    assert detail_codes(again) == ["already_decided"]
    other = await api.patch(admin, stage, json={"reviewResult": "Approve", "justification": "overrule"})
    assert_graph_error(other, 409, "Conflict")
    found = await api.get(bob, f"{REQUESTS}/{request_id}")
    assert found.json()["status"] == "Denied"


async def test_an_approvers_justification_is_required_and_named(api):
    request_id = await pending_request(api)
    missing = await api.patch(await api.sign_in("bob"), f"{APPROVALS}/{request_id}/stages/1", json={"reviewResult": "Approve"})
    assert_graph_error(missing, 400, "BadRequest")
    assert detail_codes(missing) == ["justification_required"]


def test_a_workflow_that_does_not_answer_in_time_is_503_with_retry_after():
    error = from_refusal(NoAnswer())
    assert (error.status, error.code, [d.code for d in error.details]) == (503, "ServiceUnavailable", ["no_answer"])
    assert 1 <= int(error.headers["Retry-After"]) <= 10


async def test_a_request_in_someone_elses_name_is_403_and_starts_nothing(api):
    response = await api.post(await api.sign_in("bob"), REQUESTS, json=self_activate(principal="alice"))
    assert_graph_error(response, 403, "Authorization_RequestDenied")
    assert await api.store.claims(principal_id="alice") == []


async def test_a_policy_failure_is_graphs_code_with_ours_in_the_details(api):
    response = await api.post(await api.sign_in("alice"), REQUESTS, json=self_activate(justification="short"))
    error = assert_graph_error(response, 400, "RoleAssignmentRequestPolicyValidationFailed")
    assert detail_codes(response) == ["justification_too_short"]
    assert error["details"][0]["target"] == "justification"
    not_eligible = await api.post(await api.sign_in("carol"), REQUESTS, json=self_activate(principal="carol"))
    assert "not_eligible" in detail_codes(not_eligible)


async def test_a_second_request_while_one_is_pending_is_refused(api):
    await pending_request(api)
    again = await api.post(await api.sign_in("alice"), REQUESTS, json=self_activate())
    assert_graph_error(again, 400, "PendingRoleAssignmentRequest")


async def test_a_body_that_is_not_a_request_names_its_fields(api):
    alice = await api.sign_in("alice")
    bad = {**self_activate(), "accessId": "admin", "scheduleInfo": {"expiration": {"type": "afterDuration"}}, "extra": 1}
    response = await api.post(alice, REQUESTS, json=bad)
    assert_graph_error(response, 400, "BadRequest")
    targets = {d["target"] for d in response.json()["error"]["details"]}
    assert {"accessId", "extra"} <= targets and any(t.startswith("scheduleInfo.expiration") for t in targets)
    too_long = await api.post(
        alice, REQUESTS, json={**self_activate(), "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT30H"}}}
    )
    assert "duration_exceeds_max" in detail_codes(too_long)


async def mfa_by_code_only(store) -> None:
    """grp-ops members must prove MFA with a TOTP code: a sign-in does not count."""
    policy = Policy(
        activation=ActivationSettings(require_mfa=True, mfa_methods=["totp"], approval=[ApprovalStage(approvers=["bob"])])
    )
    await store.set_policy("grp-ops", AccessType.member, policy, by="admin")


def next_code(secret: str) -> str:
    """The code of the next 30-second step: the sign-in used up the current one."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def test_a_policy_that_wants_a_code_gets_one_in_the_request(api):
    await mfa_by_code_only(api.store)
    alice = await api.sign_in("alice")
    without = await api.post(alice, REQUESTS, json=self_activate())
    assert "mfa_method_not_allowed" in detail_codes(without)
    code = next_code(await api.store.mfa_secret("alice"))
    with_code = await api.post(alice, REQUESTS, json=self_activate(mfaCode=code))
    assert with_code.status_code == 201, with_code.text
    assert code not in with_code.text and code not in str(await api.pim.status("activation/grp-ops/member/alice"))


async def test_wrong_codes_are_limited_per_principal(time_env, demo):
    await mfa_by_code_only(demo)
    async with running_api(time_env, demo, api_rate_mfa_failures=2) as api:
        alice = await api.sign_in("alice")
        right = current_code(await demo.mfa_secret("alice"))
        wrong = [c for c in ("000000", "111111", "222222") if c != right][:2]
        for code in wrong:
            refused = await api.post(alice, REQUESTS, json=self_activate(mfaCode=code))
            assert "mfa_invalid" in detail_codes(refused)
        limited = await api.post(alice, REQUESTS, json=self_activate(mfaCode=next_code(await demo.mfa_secret("alice"))))
        assert_graph_error(limited, 429, "TooManyRequests")


async def test_decisions_are_limited_per_approver(time_env, demo):
    async with running_api(time_env, demo, api_rate_decisions=1) as api:
        request_id = await pending_request(api)
        bob = await api.sign_in("bob")
        stage = f"{APPROVALS}/{request_id}/stages/1"
        assert (await api.patch(bob, stage, json={"reviewResult": "Deny", "justification": "no"})).status_code == 204
        assert_graph_error(
            await api.patch(bob, stage, json={"reviewResult": "Deny", "justification": "no"}), 429, "TooManyRequests"
        )


async def test_access_granted_through_graph_ends_on_time(api, time_env):
    dave = await api.sign_in("dave")  # eligible for grp-dev through grp-sre; no approval
    body = {
        **self_activate(principal="dave", group="grp-dev"),
        "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": "PT1H"}},
    }
    created = await api.post(dave, REQUESTS, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] in ("Granted", "Provisioned")
    assert await api.store.has_membership("grp-dev", AccessType.member, "dave")
    await time_env.sleep(timedelta(hours=1, minutes=1))

    async def status() -> str:
        return (await api.get(dave, f"{REQUESTS}/{created.json()['id']}")).json()["status"]

    await eventually(status, what="revoked at expiry", until=lambda s: s == "Revoked")
    assert not await api.store.has_membership("grp-dev", AccessType.member, "dave")
