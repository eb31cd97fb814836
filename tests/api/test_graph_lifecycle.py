"""The whole lifecycle of an activation through Microsoft Graph's resources, over
real HTTP, as a Graph client would drive it: alice asks, bob finds it in his
inbox and approves the stage, alice's access is provisioned, she deactivates it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pim.api.graph.activations import GRAPH_STATUS
from pim.api.graph.requests import graph_status_named
from pim.domain.models import AccessType, State
from tests.api.harness import APPROVALS, REQUESTS
from tests.polling import eventually

JUSTIFICATION = "INC-42 database failover"


def self_activate(principal: str = "alice", group: str = "grp-ops", **extra) -> dict:
    return {
        "action": "selfActivate",
        "accessId": "member",
        "principalId": principal,
        "groupId": group,
        "justification": JUSTIFICATION,
        "scheduleInfo": {
            "startDateTime": datetime.now(UTC).isoformat(),
            "expiration": {"type": "afterDuration", "duration": "PT2H"},
        },
        **extra,
    }


async def test_request_inbox_approval_provisioning_and_deactivation(api, time_env):
    alice, bob = await api.sign_in("alice"), await api.sign_in("bob")

    created = await api.post(alice, REQUESTS, json=self_activate())
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["status"] == "PendingApproval"
    assert (request["action"], request["principalId"], request["groupId"], request["accessId"]) == (
        "selfActivate",
        "alice",
        "grp-ops",
        "member",
    )
    assert request["approvalId"] == request["id"] and request["justification"] == JUSTIFICATION
    assert request["id"].replace("-", "").replace("_", "").isalnum()  # URL-safe as it is

    inbox = await api.get(bob, f"{REQUESTS}/filterByCurrentUser(on='approver')")
    assert inbox.status_code == 200, inbox.text
    assert [r["id"] for r in inbox.json()["value"]] == [request["id"]]
    assert "@odata.context" not in inbox.json()["value"][0]  # only the collection has one
    # Graph compares enum values without regard to case
    pending = await api.get(
        bob,
        f"{REQUESTS}/filterByCurrentUser(on='approver')",
        params={"$filter": "status eq 'pendingapproval' and accessId eq 'Member'"},
    )
    assert [r["id"] for r in pending.json()["value"]] == [request["id"]]

    approval = await api.get(bob, f"{APPROVALS}/{request['id']}")
    assert approval.status_code == 200, approval.text
    [stage] = approval.json()["stages"]
    assert "@odata.context" not in stage
    assert (stage["id"], stage["assignedToMe"], stage["reviewResult"], stage["status"]) == (
        "1",
        True,
        "NotReviewed",
        "InProgress",
    )
    stages = (await api.get(bob, f"{APPROVALS}/{request['id']}/stages")).json()
    assert stages["@odata.context"].endswith(f"/assignmentApprovals('{request['id']}')/stages")
    assert stages["value"] == [stage]
    one = await api.get(bob, f"{APPROVALS}/{request['id']}/stages/1")
    assert one.json() == {"@odata.context": stages["@odata.context"] + "/$entity", **stage}
    assert (await api.get(bob, f"{APPROVALS}/{request['id']}/stages/2")).status_code == 404

    decided = await api.patch(
        bob, f"{APPROVALS}/{request['id']}/stages/1", json={"reviewResult": "Approve", "justification": "ok"}
    )
    assert decided.status_code == 204, decided.text

    async def status_of_request() -> str:
        return (await api.get(alice, f"{REQUESTS}/{request['id']}")).json()["status"]

    await eventually(status_of_request, what="provisioned", until=lambda s: s == "Provisioned")
    assert await api.store.has_membership("grp-ops", AccessType.member, "alice")
    [stage] = (await api.get(bob, f"{APPROVALS}/{request['id']}")).json()["stages"]
    assert (stage["reviewResult"], stage["status"], stage["reviewedBy"]["id"], stage["assignedToMe"]) == (
        "Approved",
        "Completed",
        "bob",
        False,
    )

    await time_env.sleep(timedelta(minutes=6))  # past the first five minutes, when only administrators deactivate
    deactivated = await api.post(alice, REQUESTS, json={**self_activate(), "action": "selfDeactivate", "justification": "done"})
    assert deactivated.status_code == 201, deactivated.text
    assert (deactivated.json()["action"], deactivated.json()["status"]) == ("selfDeactivate", "Revoked")
    assert not await api.store.has_membership("grp-ops", AccessType.member, "alice")
    assert await status_of_request() == "Revoked"


async def test_a_stage_left_undecided_past_the_approval_timeout_reads_expired(api, time_env):
    alice = await api.sign_in("alice")
    created = await api.post(alice, REQUESTS, json=self_activate())
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    await time_env.sleep(timedelta(hours=25))  # grp-ops' approval timeout is the default, 24 hours

    async def status_of_request() -> str:
        return (await api.get(alice, f"{REQUESTS}/{request_id}")).json()["status"]

    await eventually(status_of_request, what="approval expired", until=lambda s: s == "Canceled")
    [stage] = (await api.get(alice, f"{APPROVALS}/{request_id}/stages")).json()["value"]
    assert (stage["reviewResult"], stage["status"], stage["assignedToMe"]) == ("NotReviewed", "Expired", False)


def test_a_status_filter_names_graphs_status_in_any_case():
    assert [graph_status_named(text) for text in ("pendingapproval", "PROVISIONED", "Revoked", "PendingRevocation", None)] == [
        "PendingApproval",
        "Provisioned",
        "Revoked",
        None,
        None,
    ]


def test_every_state_reads_as_one_of_graphs_statuses():
    documented = {  # privilegedAccessSchedule status, Graph v1.0
        "Canceled",
        "Denied",
        "Failed",
        "Granted",
        "PendingAdminDecision",
        "PendingApproval",
        "PendingProvisioning",
        "PendingScheduleCreation",
        "Provisioned",
        "Revoked",
        "ScheduleCreated",
    }
    assert set(GRAPH_STATUS) == set(State) and set(GRAPH_STATUS.values()) <= documented
    assert GRAPH_STATUS[State.revoking] == "Provisioned"  # still held while it is being removed
