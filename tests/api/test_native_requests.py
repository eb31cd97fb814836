"""The native request endpoints (/api/requests), over real HTTP, as `pim` in API mode
drives them: the caller is always the actor, the answers are the `status` query's
JSON, and the workflow's refusals keep their codes."""

from __future__ import annotations

from pim.domain.models import AccessType
from pim.identity.totp import current_code
from tests.api.harness import running_api
from tests.polling import eventually

REQUESTS = "/api/requests"
ALICE_OPS = "activation/grp-ops/member/alice"
JUSTIFICATION = "INC-42 database failover"


def refusal(response, status: int) -> tuple[str, str]:
    """The error's code in the details (the product's own) and its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    return (error.get("details") or [{}])[0].get("code", error["code"]), error["message"]


async def test_a_request_is_decided_extended_and_ended_by_its_callers(api, time_env):
    alice, bob, carol, admin = [await api.sign_in(user) for user in ("alice", "bob", "carol", "admin")]

    asked = await api.post(
        alice, REQUESTS, json={"group_id": "grp-ops", "duration": "PT2H", "justification": JUSTIFICATION, "wait": True}
    )
    assert asked.status_code == 201, asked.text
    status = asked.json()
    assert (status["request_id"], status["state"], status["principal_id"]) == (ALICE_OPS, "pending_approval", "alice")
    assert status["requested_duration"] == "PT2H" and status["stages"][0]["approvers"] == ["bob"]
    # Her sign-in (TOTP, a moment ago) was the MFA the policy asks for.
    assert refusal(await api.post(alice, REQUESTS, json={"group_id": "grp-ops"}), 409) == (
        "already_running",
        f"a request with id {ALICE_OPS} is already running",
    )

    assert (await api.get(alice, f"{REQUESTS}/{ALICE_OPS}")).json()["state"] == "pending_approval"
    assert (await api.get(bob, f"{REQUESTS}/{ALICE_OPS}")).status_code == 200  # her approver
    assert refusal(await api.get(carol, f"{REQUESTS}/{ALICE_OPS}"), 403)[0] == "not_authorized"

    assert refusal(await api.post(alice, f"{REQUESTS}/{ALICE_OPS}/approve", json={"justification": "me"}), 403) == (
        "self_approval",
        "refused: nobody approves their own request",
    )
    assert refusal(await api.post(bob, f"{REQUESTS}/{ALICE_OPS}/approve"), 400)[0] == "justification_required"
    approved = await api.post(bob, f"{REQUESTS}/{ALICE_OPS}/approve", json={"justification": "approved for INC-42"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "active"
    assert [d["approver_id"] for d in approved.json()["stages"][0]["decisions"]] == ["bob"]
    assert await api.store.has_membership("grp-ops", AccessType.member, "alice")

    before = approved.json()["expires_at"]
    extended = await api.post(alice, f"{REQUESTS}/{ALICE_OPS}/extend", json={"duration": "PT1H", "justification": "longer"})
    assert extended.status_code == 200, extended.text
    assert extended.json()["expires_at"] > before and extended.json()["extensions"] == 1

    # In the first five minutes only an administrator ends it: the workflow's code, Graph's.
    early = await api.post(alice, f"{REQUESTS}/{ALICE_OPS}/deactivate", json={"reason": "done"})
    assert refusal(early, 400)[0] == "too_early" and early.json()["error"]["code"] == "ActiveDurationTooShort"
    ended = await api.post(admin, f"{REQUESTS}/{ALICE_OPS}/deactivate", json={"reason": "incident closed"})
    assert ended.status_code == 200, ended.text
    assert ended.json()["state"] == "deactivated"
    assert not await api.store.has_membership("grp-ops", AccessType.member, "alice")
    assert refusal(await api.post(bob, f"{REQUESTS}/{ALICE_OPS}/deny", json={"justification": "late"}), 409)[0] == (
        "request_ended"
    )


async def test_a_pending_request_is_canceled_and_an_unknown_one_is_404(api):
    bob = await api.sign_in("bob")
    owner = "activation/grp-ops/owner/bob"
    asked = await api.post(bob, REQUESTS, json={"group_id": "grp-ops", "access": "owner", "justification": "rotate the owners"})
    assert asked.status_code == 201, asked.text
    assert asked.json() == {"request_id": owner}  # answered at once: no `wait`

    async def state() -> str:
        return (await api.get(bob, f"{REQUESTS}/{owner}")).json()["state"]

    await eventually(state, what="pending approval", until=lambda s: s == "pending_approval")
    canceled = await api.post(bob, f"{REQUESTS}/{owner}/cancel", json={"reason": "not needed"})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["state"] == "canceled"

    assert refusal(await api.get(bob, f"{REQUESTS}/activation/grp-ops/member/nobody"), 404)[1] == (
        "no request activation/grp-ops/member/nobody"
    )
    assert (await api.post(bob, f"{REQUESTS}/not-an-id/approve", json={})).status_code == 404


async def test_bad_input_names_its_field_and_echoes_nothing(api):
    alice = await api.sign_in("alice")
    for body, field in (
        ({"group_id": "grp-ops", "principal_id": "bob"}, "principal_id"),  # the actor is never a field
        ({"group_id": "grp-ops", "duration": "PT0S"}, "duration"),
        ({"group_id": "grp-ops", "mfa_code": "98765x"}, "mfa_code"),
        ({"group_id": "grp ops"}, "group_id"),
    ):
        response = await api.post(alice, REQUESTS, json=body)
        assert response.status_code == 400, response.text
        assert [d["target"] for d in response.json()["error"]["details"]] == [field]
        assert "98765x" not in response.text
    extend = await api.post(alice, f"{REQUESTS}/{ALICE_OPS}/extend", json={"duration": "-PT1H"})
    assert extend.status_code == 400 and extend.json()["error"]["details"][0]["target"] == "duration"
    assert (await api.get(alice, REQUESTS, params={"state": "asleep", "principal": "alice"})).status_code == 400
    # Listing needs no visibility here: refused before anything is asked.
    assert refusal(await api.get(alice, REQUESTS, params={"state": "pending_approval"}), 403)[0] == "not_authorized"
    assert (await api.post(None, REQUESTS, json={"group_id": "grp-ops"})).status_code == 401


async def test_wrong_codes_are_counted_until_the_api_stops_listening(time_env, demo):
    async with running_api(time_env, demo, api_rate_mfa_failures=2) as api:
        alice = await api.sign_in("alice")
        wrong = f"{(int(current_code(await demo.mfa_secret('alice'))) + 500_000) % 1_000_000:06d}"
        body = {"group_id": "grp-ops", "justification": JUSTIFICATION, "mfa_code": wrong, "wait": True}
        for _ in range(2):
            rejected = await api.post(alice, REQUESTS, json=body)
            assert rejected.status_code == 201, rejected.text
            assert rejected.json()["state"] == "rejected"
            assert [v["code"] for v in rejected.json()["violations"]] == ["mfa_invalid"]
        limited = await api.post(alice, REQUESTS, json=body)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        # Without a code, her sign-in still counts: the limit is on wrong codes, not on her.
        asked = await api.post(alice, REQUESTS, json={**body, "mfa_code": None})
        assert asked.status_code == 201 and asked.json()["state"] == "pending_approval", asked.text


async def test_decisions_are_limited_per_approver(time_env, demo):
    async with running_api(time_env, demo, api_rate_decisions=1) as api:
        alice, bob = await api.sign_in("alice"), await api.sign_in("bob")
        asked = await api.post(alice, REQUESTS, json={"group_id": "grp-ops", "justification": JUSTIFICATION, "wait": True})
        assert asked.json()["state"] == "pending_approval", asked.text
        assert (await api.post(bob, f"{REQUESTS}/{ALICE_OPS}/deny", json={})).status_code == 400  # no justification
        assert (await api.post(bob, f"{REQUESTS}/{ALICE_OPS}/deny", json={"justification": "no"})).status_code == 429
