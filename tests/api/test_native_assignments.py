"""Assignments and policies through the native endpoints, over real HTTP: anyone
signed in reads them; a manager of the group (dave administers grp-dev) assigns,
extends, renews, removes and changes the policy, each change audited as the caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pim.domain.models import AccessType
from tests.api.native import answered, refused

ASSIGNMENT_KEYS = {
    "id",
    "group_id",
    "access",
    "principal_id",
    "kind",
    "state",
    "starts_at",
    "ends_at",
    "created_by",
    "justification",
}


def eligible_for(principal: str, **window) -> dict:
    return {"group_id": "grp-dev", "principal_id": principal, "kind": "eligible", "justification": "on call", **window}


async def test_assignments_are_listed_with_their_state_for_anyone_signed_in(api):
    alice = await api.sign_in("alice")
    listed = answered(await api.get(alice, "/api/assignments", params={"group": "grp-ops"}))
    assert {(a["principal_id"], a["access"], a["kind"], a["state"]) for a in listed} == {
        ("alice", "member", "eligible", "active"),
        ("carol", "member", "active", "active"),
        ("bob", "owner", "eligible", "active"),
    }
    assert all(set(a) == ASSIGNMENT_KEYS for a in listed)
    mine = answered(await api.get(alice, "/api/assignments", params={"principal": "alice"}))
    assert sorted(a["group_id"] for a in mine) == ["grp-ops", "grp-sre"]
    assert refused(await api.get(alice, "/api/assignments", params={"group": "grp ops"}), 400)["targets"] == ["group"]
    refused(await api.get(None, "/api/assignments"), 401)


async def test_a_manager_assigns_for_a_time_and_extends_it(api):
    dave, alice = await api.sign_in("dave"), await api.sign_in("alice")

    created = answered(await api.post(dave, "/api/assignments", json=eligible_for("bob", duration="P30D")), 201)
    assignment_id = created["assignment_id"]
    row = await api.store.assignment(assignment_id)
    assert (row.principal_id, row.kind, row.created_by) == ("bob", "eligible", "dave")
    first_end = row.ends_at

    extended = answered(await api.post(dave, f"/api/assignments/{assignment_id}/extend", json={"duration": "P10D"}))
    assert datetime.fromisoformat(extended["ends_at"]) == first_end + timedelta(days=10)
    assert (await api.store.assignment(assignment_id)).ends_at == first_end + timedelta(days=10)
    too_soon = refused(await api.post(dave, f"/api/assignments/{assignment_id}/renew", json={"duration": "P10D"}), 400)
    assert too_soon["codes"] == ["not_renewable"]

    mine = eligible_for("alice", duration="P30D")
    assert refused(await api.post(alice, "/api/assignments", json=mine), 403)["codes"] == ["not_authorized"]
    assert refused(await api.post(alice, f"/api/assignments/{assignment_id}/extend", json={"duration": "P1D"}), 403)
    assert (await api.store.assignment(assignment_id)).ends_at == first_end + timedelta(days=10)
    refused(await api.post(None, "/api/assignments", json=mine), 401)
    refused(await api.post(None, f"/api/assignments/{assignment_id}/extend", json={"duration": "P1D"}), 401)


async def test_an_assignment_body_that_does_not_fit_names_its_field(api):
    dave = await api.sign_in("dave")
    cases = [
        (eligible_for("bob"), "duration"),  # none of duration, ends_at, permanent
        (eligible_for("bob", duration="P30D", permanent=True), "duration"),
        (eligible_for("bob", duration="-P1D"), "duration"),
        (eligible_for("bob", ends_at="2030-01-01T00:00:00"), "ends_at"),  # no zone
        ({**eligible_for("bob", permanent=True), "kind": "forever"}, "kind"),
        ({**eligible_for("bob", permanent=True), "access": "admin"}, "access"),
        ({**eligible_for("bob", permanent=True), "mfa_code": "abc"}, "mfa_code"),
        ({**eligible_for("bob", permanent=True), "principal": "bob"}, "principal"),
    ]
    for body, field in cases:
        assert field in refused(await api.post(dave, "/api/assignments", json=body), 400)["targets"], body
    assert [a.principal_id for a in await api.store.assignments("grp-dev")] == ["grp-sre"]
    both = await api.post(
        dave, "/api/assignments/asg-0123456789ab/extend", json={"duration": "P1D", "ends_at": "2030-01-01T00:00:00Z"}
    )
    assert refused(both, 400)["targets"] == ["duration"]


async def test_a_manager_removes_an_assignment_after_its_first_minutes_and_renews_an_expired_one(api):
    dave, alice = await api.sign_in("dave"), await api.sign_in("alice")
    now, hour, day = datetime.now(UTC), timedelta(hours=1), timedelta(days=1)
    # Made an hour ago (past the first 5 minutes), and one that expired yesterday.
    standing = await api.store.assign("grp-dev", "carol", starts_at=now - hour, created_at=now - hour, by="dave")
    lapsed = await api.store.assign(
        "grp-dev", "alice", starts_at=now - 40 * day, ends_at=now - day, created_at=now - 40 * day, by="dave"
    )
    fresh = answered(await api.post(dave, "/api/assignments", json=eligible_for("bob", duration="P30D")), 201)

    assert refused(await api.post(alice, f"/api/assignments/{standing}/remove"), 403)["codes"] == ["not_authorized"]
    removed = await api.post(dave, f"/api/assignments/{standing}/remove", json={"reason": "left the team"})
    assert answered(removed) == {"assignment_id": standing, "removed": True}
    assert (await api.store.assignment(standing)).removal_reason == "left the team"
    early = refused(await api.post(dave, f"/api/assignments/{fresh['assignment_id']}/remove"), 400)
    assert early["codes"] == ["removal_too_early"]
    assert refused(await api.post(dave, "/api/assignments/asg-000000000000/remove"), 404)["codes"] == ["assignment_not_found"]

    renewed = answered(await api.post(dave, f"/api/assignments/{lapsed}/renew", json={"duration": "P30D"}))
    assert datetime.fromisoformat(renewed["ends_at"]) > now + timedelta(days=29)
    listed = answered(await api.get(alice, "/api/assignments", params={"group": "grp-dev", "all": "true"}))
    assert {a["id"]: a["state"] for a in listed if a["id"] in (standing, lapsed)} == {standing: "removed", lapsed: "active"}
    refused(await api.post(None, f"/api/assignments/{lapsed}/remove"), 401)
    refused(await api.post(None, f"/api/assignments/{lapsed}/renew", json={"duration": "P1D"}), 401)


async def test_policies_are_shown_to_anyone_and_changed_by_a_manager(api):
    alice, dave = await api.sign_in("alice"), await api.sign_in("dave")

    shown = answered(await api.get(alice, "/api/policies/grp-ops/member"))
    assert (shown["group_id"], shown["access"]) == ("grp-ops", "member")
    assert shown["version"] == (await api.store.policy("grp-ops", AccessType.member))[1]
    assert shown["policy"]["activation"]["max_duration"] == "PT8H"
    assert shown["policy"]["activation"]["approval"][0]["approvers"] == ["bob"]

    change = {"settings": ["activation.max_duration=PT2H", "activation.require_mfa=true"]}
    _, before = await api.store.policy("grp-dev", AccessType.member)
    assert answered(await api.patch(dave, "/api/policies/grp-dev/member", json=change)) == {
        "group_id": "grp-dev",
        "access": "member",
        "version": before + 1,
    }
    policy, version = await api.store.policy("grp-dev", AccessType.member)
    assert (policy.activation.max_duration, policy.activation.require_mfa, version) == (timedelta(hours=2), True, before + 1)
    [audited] = [e for e in await api.store.audit(group_id="grp-dev") if e.action == "policy_changed"]
    assert audited.actor == "dave" and audited.details["changes"]["activation.max_duration"] == {"old": "PT4H", "new": "PT2H"}

    assert refused(await api.patch(alice, "/api/policies/grp-dev/member", json=change), 403)["codes"] == ["not_authorized"]
    unknown = refused(await api.patch(dave, "/api/policies/grp-dev/member", json={"settings": ["activation.colour=blue"]}), 400)
    assert unknown["codes"] == ["invalid_policy"] and "activation.colour" in unknown["message"]
    assert refused(await api.patch(dave, "/api/policies/grp-dev/member", json={"settings": []}), 400)["targets"] == ["settings"]
    assert refused(await api.get(alice, "/api/policies/grp-sre/member"), 404)  # not in PIM
    assert refused(await api.get(alice, "/api/policies/grp-ops/boss"), 400)["targets"] == ["access"]
    assert (await api.store.policy("grp-dev", AccessType.member))[1] == before + 1
    refused(await api.get(None, "/api/policies/grp-ops/member"), 401)
    refused(await api.patch(None, "/api/policies/grp-dev/member", json=change), 401)
