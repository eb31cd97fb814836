"""Administrators assign and remove access through Microsoft Graph's resources, over
real HTTP: active membership with assignmentScheduleRequests, eligibility with
eligibilityScheduleRequests; each change reads back as a Graph request by its id.
Someone without an administrator role is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pim.domain.models import AccessType
from tests.api.harness import GROUP, REQUESTS
from tests.polling import eventually

ELIGIBILITY_REQUESTS = f"{GROUP}/eligibilityScheduleRequests"
SCHEDULES = f"{GROUP}/assignmentSchedules"
ELIGIBILITY_SCHEDULES = f"{GROUP}/eligibilitySchedules"
LAST_MONTH = datetime.now(UTC) - timedelta(days=30)


def admin_action(action: str, principal: str, group: str = "grp-dev", **extra) -> dict:
    return {
        "action": action,
        "accessId": "member",
        "principalId": principal,
        "groupId": group,
        "justification": "quarterly access review",
        **extra,
    }


def lasting(duration: str) -> dict:
    return {
        "scheduleInfo": {
            "startDateTime": datetime.now(UTC).isoformat(),
            "expiration": {"type": "afterDuration", "duration": duration},
        }
    }


async def standing_assignment(api, principal: str, kind: str) -> str:
    """An assignment made last month (past the first five minutes, when none may be removed)."""
    return await api.store.assign(
        "grp-dev", principal, kind=kind, starts_at=LAST_MONTH, created_at=LAST_MONTH, justification="team", by="admin"
    )


async def schedule_ids(api, token: str, resource: str, group: str = "grp-dev") -> dict[str, str]:
    listed = await api.get(token, resource, params={"$filter": f"groupId eq '{group}'"})
    assert listed.status_code == 200, listed.text
    return {item["id"]: item["principalId"] for item in listed.json()["value"]}


async def test_administrator_assigns_and_removes_active_membership(api):
    admin = await api.sign_in("admin")
    carols = await standing_assignment(api, "carol", "active")

    created = await api.post(admin, REQUESTS, json={**admin_action("adminAssign", "bob"), **lasting("P30D")})
    assert created.status_code == 201, created.text
    request = created.json()
    assert (request["action"], request["status"], request["principalId"], request["groupId"]) == (
        "adminAssign",
        "Provisioned",
        "bob",
        "grp-dev",
    )
    assert request["createdBy"] == {"user": {"id": "admin", "displayName": "Admin"}, "application": None}
    assert request["scheduleInfo"]["expiration"]["type"] == "afterDateTime"
    assert request["@odata.context"].endswith("#identityGovernance/privilegedAccess/group/assignmentScheduleRequests/$entity")
    assert request["id"].replace("-", "").replace("_", "").isalnum()  # URL-safe as it is

    again = await api.get(admin, f"{REQUESTS}/{request['id']}")
    assert again.status_code == 200, again.text
    assert {k: again.json()[k] for k in ("id", "action", "status", "targetScheduleId")} == {
        k: request[k] for k in ("id", "action", "status", "targetScheduleId")
    }
    await eventually(lambda: api.store.has_membership("grp-dev", AccessType.member, "bob"), what="bob a member")
    assert await schedule_ids(api, admin, SCHEDULES) == {request["targetScheduleId"]: "bob", carols: "carol"}

    too_soon = await api.post(admin, REQUESTS, json=admin_action("adminRemove", "bob"))
    assert too_soon.status_code == 400, too_soon.text
    assert too_soon.json()["error"]["code"] == "ActiveDurationTooShort"
    assert too_soon.json()["error"]["details"][0]["code"] == "removal_too_early"

    removed = await api.post(admin, REQUESTS, json=admin_action("adminRemove", "carol", justification="left the team"))
    assert removed.status_code == 201, removed.text
    assert {k: removed.json()[k] for k in ("action", "status", "targetScheduleId", "justification")} == {
        "action": "adminRemove",
        "status": "Revoked",
        "targetScheduleId": carols,
        "justification": "left the team",
    }
    assert not await api.store.has_membership("grp-dev", AccessType.member, "carol")
    assert await schedule_ids(api, admin, SCHEDULES) == {request["targetScheduleId"]: "bob"}
    read_back = await api.get(admin, f"{REQUESTS}/{removed.json()['id']}")
    assert (read_back.status_code, read_back.json()["action"]) == (200, "adminRemove")

    nothing_left = await api.post(admin, REQUESTS, json=admin_action("adminRemove", "carol"))
    assert nothing_left.status_code == 400 and nothing_left.json()["error"]["code"] == "RoleAssignmentDoesNotExist"


async def test_administrator_assigns_and_removes_eligibility(api):
    admin = await api.sign_in("admin")
    carols = await standing_assignment(api, "carol", "eligible")
    in_90_days = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    # Capitalized as Graph's own example writes them: Graph reads enum values in any case.
    until = {"scheduleInfo": {"expiration": {"type": "AfterDateTime", "endDateTime": in_90_days.isoformat()}}}

    created = await api.post(admin, ELIGIBILITY_REQUESTS, json={**admin_action("AdminAssign", "bob"), **until})
    assert created.status_code == 201, created.text
    request = created.json()
    assert (request["action"], request["status"]) == ("adminAssign", "Provisioned")
    assert request["scheduleInfo"]["expiration"]["endDateTime"].startswith(in_90_days.strftime("%Y-%m-%dT%H:%M:%S"))
    assert request["@odata.context"].endswith("/eligibilityScheduleRequests/$entity")
    assert (await api.get(admin, f"{ELIGIBILITY_REQUESTS}/{request['id']}")).json()["targetScheduleId"] == request[
        "targetScheduleId"
    ]
    # An eligibility request is no assignment request.
    assert (await api.get(admin, f"{REQUESTS}/{request['id']}")).status_code == 404

    eligible = await schedule_ids(api, admin, ELIGIBILITY_SCHEDULES)
    assert {principal for principal in eligible.values()} == {"bob", "carol", "grp-sre", "alice", "dave"}
    assert eligible[request["targetScheduleId"]] == "bob" and eligible[carols] == "carol"

    removed = await api.post(admin, ELIGIBILITY_REQUESTS, json=admin_action("adminRemove", "carol"))
    assert removed.status_code == 201, removed.text
    assert (removed.json()["status"], removed.json()["targetScheduleId"]) == ("Revoked", carols)
    assert "carol" not in (await schedule_ids(api, admin, ELIGIBILITY_SCHEDULES)).values()

    listed = await api.get(admin, ELIGIBILITY_REQUESTS, params={"$filter": "groupId eq 'grp-dev'"})
    assert listed.status_code == 200, listed.text
    assert [(r["action"], r["principalId"]) for r in listed.json()["value"]] == [("adminRemove", "carol"), ("adminAssign", "bob")]

    activation = await api.post(admin, ELIGIBILITY_REQUESTS, json=admin_action("selfActivate", "admin"))
    assert activation.status_code == 400 and activation.json()["error"]["details"][0]["target"] == "action"


async def test_a_service_principal_with_a_role_assigns_as_an_application(api):
    await api.store.grant_role("svc-directory-sync", "Groups Administrator")
    service = await api.service_token()

    created = await api.post(service, ELIGIBILITY_REQUESTS, json={**admin_action("adminAssign", "carol"), **lasting("P90D")})
    assert created.status_code == 201, created.text
    assert created.json()["createdBy"]["user"] is None
    assert created.json()["createdBy"]["application"]["id"] == "svc-directory-sync"


async def test_someone_without_an_administrator_role_is_refused(api):
    alice = await api.sign_in("alice")

    for resource in (REQUESTS, ELIGIBILITY_REQUESTS):
        refused = await api.post(alice, resource, json={**admin_action("adminAssign", "alice"), **lasting("P30D")})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
        assert refused.json()["error"]["details"][0]["code"] == "not_authorized"
    assert not [row for row in await api.store.assignments("grp-dev", "alice")]
    # Refused before any look-up: whether carol or bob hold anything is none of alice's business.
    for action, principal in (("adminRemove", "carol"), ("adminExtend", "bob")):
        refused = await api.post(alice, REQUESTS, json={**admin_action(action, principal, group="grp-ops"), **lasting("P1D")})
        assert refused.status_code == 403, refused.text
    assert await api.store.has_membership("grp-ops", AccessType.member, "carol")

    listing = await api.get(alice, ELIGIBILITY_REQUESTS, params={"$filter": "groupId eq 'grp-dev'"})
    assert listing.status_code == 403, listing.text
    mine = await api.get(alice, f"{ELIGIBILITY_REQUESTS}/filterByCurrentUser(on='principal')")
    assert (mine.status_code, mine.json()["value"]) == (200, [])


async def test_what_an_administrator_action_cannot_honour_is_refused_naming_the_field(api):
    admin = await api.sign_in("admin")
    dry_run = {**admin_action("adminAssign", "bob"), **lasting("P30D"), "isValidationOnly": True}
    ticket = {**admin_action("adminAssign", "bob"), **lasting("P30D"), "ticketInfo": {"ticketNumber": "OPS-1"}}
    forever = admin_action("adminAssign", "bob", scheduleInfo={"expiration": {"type": "noExpiration"}})

    for body, field in ((dry_run, "isValidationOnly"), (ticket, "ticketInfo")):
        answer = await api.post(admin, REQUESTS, json=body)
        assert answer.status_code == 400 and answer.json()["error"]["details"][0]["target"] == field, answer.text
    permanent = await api.post(admin, REQUESTS, json=forever)
    assert permanent.status_code == 400, permanent.text
    assert permanent.json()["error"]["code"] == "RoleAssignmentRequestPolicyValidationFailed"
    assert permanent.json()["error"]["message"].startswith("scheduleInfo.expiration: ")
    assert not await api.store.assignments("grp-dev", "bob")


async def test_administrator_extends_a_live_eligibility_and_renews_an_expired_one(api):
    admin = await api.sign_in("admin")
    created = await api.post(admin, ELIGIBILITY_REQUESTS, json={**admin_action("adminAssign", "bob"), **lasting("P30D")})
    assert created.status_code == 201, created.text
    first_end = datetime.fromisoformat(created.json()["scheduleInfo"]["expiration"]["endDateTime"])

    extended = await api.post(admin, ELIGIBILITY_REQUESTS, json={**admin_action("adminExtend", "bob"), **lasting("P30D")})
    assert extended.status_code == 201, extended.text
    assert (extended.json()["action"], extended.json()["status"]) == ("adminExtend", "Provisioned")
    assert extended.json()["targetScheduleId"] == created.json()["targetScheduleId"]
    new_end = datetime.fromisoformat(extended.json()["scheduleInfo"]["expiration"]["endDateTime"])
    assert new_end - first_end == timedelta(days=30)

    # carol's eligibility ran out ten days ago; an administrator gives it a new window.
    expired = await api.store.assign(
        "grp-dev",
        "carol",
        kind="eligible",
        starts_at=LAST_MONTH - timedelta(days=30),
        ends_at=datetime.now(UTC) - timedelta(days=10),
        created_at=LAST_MONTH - timedelta(days=30),
        justification="last quarter's project",
        by="admin",
    )
    assert expired not in await schedule_ids(api, admin, ELIGIBILITY_SCHEDULES)
    renewed = await api.post(admin, ELIGIBILITY_REQUESTS, json={**admin_action("adminRenew", "carol"), **lasting("P90D")})
    assert renewed.status_code == 201, renewed.text
    assert (renewed.json()["action"], renewed.json()["targetScheduleId"]) == ("adminRenew", expired)
    assert (await schedule_ids(api, admin, ELIGIBILITY_SCHEDULES))[expired] == "carol"

    nothing_expired = await api.post(admin, ELIGIBILITY_REQUESTS, json={**admin_action("adminRenew", "bob"), **lasting("P90D")})
    assert nothing_expired.status_code == 400 and nothing_expired.json()["error"]["code"] == "RoleAssignmentDoesNotExist"
