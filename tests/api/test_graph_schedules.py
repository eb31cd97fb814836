"""Schedules and instances through Microsoft Graph's resources, over real HTTP: what
a user holds and may activate, directly or through a group; an activation's
instance while it is active, and gone once it is deactivated or expires; who may
list whose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.harness import GROUP, REQUESTS
from tests.polling import eventually

INSTANCES = f"{GROUP}/assignmentScheduleInstances"
SCHEDULES = f"{GROUP}/assignmentSchedules"
ELIGIBILITY_INSTANCES = f"{GROUP}/eligibilityScheduleInstances"
ELIGIBILITY_SCHEDULES = f"{GROUP}/eligibilitySchedules"
MINE = "filterByCurrentUser(on='principal')"


def activate_dev(action: str = "selfActivate") -> dict:
    """alice's membership of grp-dev, which she may activate through grp-sre (no approval)."""
    return {
        "action": action,
        "accessId": "member",
        "principalId": "alice",
        "groupId": "grp-dev",
        "justification": "deploy hotfix 1.2.3",
        "scheduleInfo": {
            "startDateTime": datetime.now(UTC).isoformat(),
            "expiration": {"type": "afterDuration", "duration": "PT1H"},
        },
    }


async def held(api, token: str) -> dict[str, dict]:
    """The caller's assignment instances, by group."""
    answer = await api.get(token, f"{INSTANCES}/{MINE}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["@odata.context"].endswith("#identityGovernance/privilegedAccess/group/assignmentScheduleInstances")
    assert all("@odata.context" not in item for item in answer.json()["value"])  # only the collection has one
    return {item["groupId"]: item for item in answer.json()["value"]}


async def activated(api, token: str) -> dict:
    created = await api.post(token, REQUESTS, json=activate_dev())
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "Provisioned", created.json()
    return created.json()


async def test_an_activation_is_an_instance_until_deactivated_or_expired(api, time_env):
    alice, admin = await api.sign_in("alice"), await api.sign_in("admin")
    assert set(await held(api, alice)) == {"grp-sre"}

    request = await activated(api, alice)
    mine = await held(api, alice)
    assert set(mine) == {"grp-sre", "grp-dev"}
    dev = mine["grp-dev"]
    assert (dev["principalId"], dev["accessId"], dev["assignmentType"], dev["memberType"]) == (
        "alice",
        "member",
        "activated",
        "group",
    )
    assert dev["assignmentScheduleId"] == request["targetScheduleId"] and dev["endDateTime"] is not None
    assert (mine["grp-sre"]["assignmentType"], mine["grp-sre"]["memberType"], mine["grp-sre"]["endDateTime"]) == (
        "assigned",
        "direct",
        None,
    )

    schedule = await api.get(alice, f"{SCHEDULES}/{dev['assignmentScheduleId']}")
    assert schedule.status_code == 200, schedule.text
    assert (schedule.json()["status"], schedule.json()["createdUsing"]) == ("Provisioned", request["id"])
    assert schedule.json()["@odata.context"].endswith("/assignmentSchedules/$entity")
    assert (await api.get(await api.sign_in("bob"), f"{SCHEDULES}/{dev['assignmentScheduleId']}")).status_code == 403

    # An administrator ends it at once (an activation has no assignment to remove).
    removed = await api.post(admin, REQUESTS, json={**activate_dev("adminRemove"), "justification": "not needed"})
    assert removed.status_code == 201, removed.text
    assert {k: removed.json()[k] for k in ("action", "status", "justification", "id")} == {
        "action": "adminRemove",
        "status": "Revoked",
        "justification": "not needed",
        "id": request["id"],
    }
    assert removed.json()["createdBy"]["user"]["id"] == "admin"
    await eventually(lambda: held(api, alice), what="the instance to go", until=lambda found: "grp-dev" not in found)
    assert (await api.get(alice, f"{SCHEDULES}/{dev['assignmentScheduleId']}")).status_code == 404

    await activated(api, alice)
    assert "grp-dev" in await held(api, alice)
    await time_env.sleep(timedelta(hours=1, minutes=1))
    await eventually(lambda: held(api, alice), what="the instance to expire", until=lambda found: "grp-dev" not in found)
    assert set(await held(api, alice)) == {"grp-sre"}


async def test_eligibility_directly_and_through_a_group(api):
    alice, bob = await api.sign_in("alice"), await api.sign_in("bob")

    answer = await api.get(alice, f"{ELIGIBILITY_INSTANCES}/{MINE}")
    assert answer.status_code == 200, answer.text
    mine = {item["groupId"]: item for item in answer.json()["value"]}
    assert {group: (i["accessId"], i["memberType"]) for group, i in mine.items()} == {
        "grp-ops": ("member", "direct"),
        "grp-dev": ("member", "group"),
    }
    assert mine["grp-ops"]["endDateTime"] is not None and mine["grp-dev"]["endDateTime"] is None

    through_sre = await api.get(alice, f"{ELIGIBILITY_SCHEDULES}/{mine['grp-dev']['eligibilityScheduleId']}")
    assert through_sre.status_code == 200, through_sre.text
    assert (through_sre.json()["principalId"], through_sre.json()["memberType"], through_sre.json()["status"]) == (
        "alice",
        "group",
        "Provisioned",
    )
    assert through_sre.json()["scheduleInfo"]["expiration"]["type"] == "noExpiration"
    assert (await api.get(bob, f"{ELIGIBILITY_SCHEDULES}/{mine['grp-dev']['eligibilityScheduleId']}")).status_code == 403

    owners = await api.get(bob, ELIGIBILITY_SCHEDULES, params={"$filter": "principalId eq 'bob' and accessId eq 'owner'"})
    assert owners.status_code == 200, owners.text
    assert [(s["groupId"], s["accessId"]) for s in owners.json()["value"]] == [("grp-ops", "owner")]


async def test_an_administrator_lists_a_group_and_filters_on_its_properties(api):
    admin = await api.sign_in("admin")

    everyone = await api.get(admin, INSTANCES, params={"$filter": "groupId eq 'grp-ops'"})
    assert everyone.status_code == 200, everyone.text
    assert [(i["principalId"], i["assignmentType"]) for i in everyone.json()["value"]] == [("carol", "assigned")]
    # Graph compares enum values whatever their case.
    assigned = await api.get(admin, SCHEDULES, params={"$filter": "groupId eq 'grp-ops' and assignmentType eq 'ASSIGNED'"})
    assert [s["principalId"] for s in assigned.json()["value"]] == ["carol"]
    activated_only = await api.get(admin, SCHEDULES, params={"$filter": "groupId eq 'grp-ops' and assignmentType eq 'Activated'"})
    assert activated_only.json()["value"] == []

    eligible = await api.get(admin, ELIGIBILITY_INSTANCES, params={"$filter": "groupId eq 'grp-dev' and memberType eq 'Group'"})
    assert sorted(i["principalId"] for i in eligible.json()["value"]) == ["alice", "dave"]


async def test_filters_that_cannot_be_answered_are_400_naming_filter(api):
    alice = await api.sign_in("alice")

    for filter_ in (
        None,
        "startswith(groupId,'grp')",
        "roleDefinitionId eq 'x'",
        "groupId eq 'grp-ops' or principalId eq 'alice'",
    ):
        params = {"$filter": filter_} if filter_ else {}
        answer = await api.get(alice, ELIGIBILITY_INSTANCES, params=params)
        assert answer.status_code == 400, (filter_, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "BadRequest" and error["details"][0]["target"] == "$filter", error
        assert error["message"].startswith("$filter: ")


async def test_nobody_lists_someone_elses_schedules(api):
    alice = await api.sign_in("alice")

    for resource in (INSTANCES, SCHEDULES, ELIGIBILITY_INSTANCES, ELIGIBILITY_SCHEDULES):
        for filter_ in ("principalId eq 'carol'", "groupId eq 'grp-ops'"):
            answer = await api.get(alice, resource, params={"$filter": filter_})
            assert answer.status_code == 403, (resource, filter_, answer.text)
            assert answer.json()["error"]["code"] == "Authorization_RequestDenied"
        own = await api.get(alice, resource, params={"$filter": "principalId eq 'alice' and groupId eq 'grp-ops'"})
        assert own.status_code == 200, (resource, own.text)
