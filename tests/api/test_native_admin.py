"""Administration through the native endpoints, over real HTTP with tokens from the
issuer: who am I, users and service principals, directory roles, groups and their
members, MFA enrolment. The actor is the token's; the operations authorize it."""

from __future__ import annotations

import pyotp

from tests.api.native import answered, refused


async def test_me_is_the_caller_the_token_names(api):
    alice, admin = await api.sign_in("alice"), await api.sign_in("admin")
    assert answered(await api.get(alice, "/api/me")) == {"principal_id": "alice", "kind": "user", "roles": []}
    assert answered(await api.get(admin, "/api/me"))["roles"] == ["Global Administrator"]
    service = answered(await api.get(await api.service_token(), "/api/me"))
    assert (service["principal_id"], service["kind"]) == ("svc-directory-sync", "service")
    refused(await api.get(None, "/api/me"), 401)


async def test_an_administrator_adds_users_and_service_principals_and_grants_them_roles(api):
    admin = await api.sign_in("admin")

    added = await api.post(admin, "/api/users", json={"id": "erin", "name": "Erin", "email": "erin@example.com"})
    assert answered(added, 201) == {"id": "erin", "kind": "user"}
    service = await api.post(admin, "/api/users", json={"id": "svc-reports", "kind": "service"})
    assert answered(service, 201) == {"id": "svc-reports", "kind": "service"}
    assert (await api.store.principal("erin")).email == "erin@example.com"
    assert (await api.store.principal("svc-reports")).kind == "service"

    granted = await api.post(admin, "/api/users/svc-reports/roles", json={"role": "Groups Administrator"})
    assert answered(granted) == {"principal_id": "svc-reports", "role": "Groups Administrator"}
    assert await api.store.roles_of("svc-reports") == ["Groups Administrator"]
    assert [e.action for e in await api.store.audit(principal_id="svc-reports")] == ["service_principal_added", "role_granted"]

    again = refused(await api.post(admin, "/api/users", json={"id": "erin"}), 409)
    assert again["codes"] == ["principal_exists"]


async def test_only_user_and_privileged_administrators_add_users_and_grant_roles(api):
    alice, dave = await api.sign_in("alice"), await api.sign_in("dave")

    attempt = refused(await api.post(alice, "/api/users", json={"id": "mallory"}), 403)
    assert attempt["codes"] == ["not_authorized"]
    assert await api.store.principal("mallory") is None
    grant = refused(await api.post(dave, "/api/users/dave/roles", json={"role": "Global Administrator"}), 403)
    assert grant["codes"] == ["not_authorized"]
    assert await api.store.roles_of("dave") == ["Groups Administrator"]
    # Refusals are audited with the caller as the actor.
    assert {(e.actor, e.details["attempted"]) for e in await api.store.audit() if e.action == "refused"} == {
        ("alice", "add_user"),
        ("dave", "grant_role"),
    }
    refused(await api.post(None, "/api/users", json={"id": "mallory"}), 401)
    refused(await api.post(None, "/api/users/dave/roles", json={"role": "Global Administrator"}), 401)


async def test_a_bad_user_or_role_body_names_its_field(api):
    admin = await api.sign_in("admin")
    cases = [
        ("/api/users", {"id": "erin smith"}, "id"),
        ("/api/users", {"id": "erin", "email": "not an address"}, "email"),
        ("/api/users", {"id": "erin", "kind": "robot"}, "kind"),
        ("/api/users", {"id": "erin", "roles": ["Global Administrator"]}, "roles"),
        ("/api/users/alice/roles", {"role": "Supreme Leader"}, "role"),
        ("/api/users/alice/roles", {}, "role"),
    ]
    for path, body, field in cases:
        error = refused(await api.post(admin, path, json=body), 400)
        assert error["targets"] == [field], (body, error)
        assert "erin smith" not in error["message"] and "not an address" not in error["message"]
    assert await api.store.principal("erin") is None


async def test_a_service_principal_with_a_role_administers_with_its_own_token(api):
    admin, service = await api.sign_in("admin"), await api.service_token()
    body = {"id": "grp-batch", "kind": "security"}
    assert refused(await api.post(service, "/api/groups", json=body), 403)["codes"] == ["not_authorized"]

    answered(await api.post(admin, "/api/users/svc-directory-sync/roles", json={"role": "Groups Administrator"}))
    assert answered(await api.post(service, "/api/groups", json=body), 201) == {"id": "grp-batch", "pim_enabled": True}
    assert [(e.action, e.actor) for e in await api.store.audit(group_id="grp-batch")] == [
        ("refused", "svc-directory-sync"),
        ("group_onboarded", "svc-directory-sync"),
    ]


async def test_groups_are_listed_for_anyone_and_created_and_onboarded_by_administrators(api):
    alice, dave = await api.sign_in("alice"), await api.sign_in("dave")

    listed = answered(await api.get(alice, "/api/groups"))
    assert [(g["id"], g["pim_enabled"], g["role_assignable"]) for g in listed] == [
        ("grp-dev", True, False),
        ("grp-ops", True, True),
        ("grp-sre", False, False),
    ]
    assert set(listed[0]) == {"id", "kind", "role_assignable", "pim_enabled"}

    onboarded = await api.post(dave, "/api/groups", json={"id": "grp-web", "kind": "security"})
    assert answered(onboarded, 201) == {"id": "grp-web", "pim_enabled": True}
    created = await api.post(dave, "/api/groups", json={"id": "grp-lab", "kind": "microsoft365", "onboard": False})
    assert answered(created, 201) == {"id": "grp-lab", "pim_enabled": False}
    assert (await api.store.group("grp-lab")).kind == "microsoft365"

    privileged = {"id": "grp-tier0", "kind": "security", "role_assignable": True}
    assert refused(await api.post(dave, "/api/groups", json=privileged), 403)["codes"] == ["not_authorized"]
    assert refused(await api.post(alice, "/api/groups", json={"id": "grp-mine", "kind": "security"}), 403)
    assert refused(await api.post(dave, "/api/groups", json={"id": "grp-x", "kind": "secret"}), 400)["targets"] == ["kind"]
    assert refused(await api.post(dave, "/api/groups", json={"kind": "security"}), 400)["targets"] == ["id"]
    assert await api.store.group("grp-tier0") is None and await api.store.group("grp-mine") is None
    refused(await api.get(None, "/api/groups"), 401)
    refused(await api.post(None, "/api/groups", json={"id": "grp-x", "kind": "security"}), 401)


async def test_offboarding_ends_the_groups_eligible_assignments(api):
    alice, dave = await api.sign_in("alice"), await api.sign_in("dave")
    [through_sre] = [a.id for a in await api.store.assignments("grp-dev")]

    assert refused(await api.post(alice, "/api/groups/grp-dev/offboard"), 403)["codes"] == ["not_authorized"]
    offboarded = answered(await api.post(dave, "/api/groups/grp-dev/offboard"))
    assert offboarded == {"group_id": "grp-dev", "ended": [through_sre]}
    assert not (await api.store.group("grp-dev")).pim_enabled
    assert refused(await api.post(dave, "/api/groups/grp-nope/offboard"), 404)["codes"] == ["group_not_found"]
    refused(await api.post(None, "/api/groups/grp-dev/offboard"), 401)


async def test_members_and_eligible_principals_with_where_their_access_comes_from(api):
    alice = await api.sign_in("alice")

    members = answered(await api.get(alice, "/api/groups/grp-ops/members"))
    assert (members["group_id"], members["access"]) == ("grp-ops", "member")
    [carol] = members["members"]
    assert carol["principal_id"] == "carol" and set(carol) == {"principal_id", "since", "sources"}
    assert [(s["kind"], s["ends_at"]) for s in carol["sources"]] == [("assignment", None)]

    eligible = answered(await api.get(alice, "/api/groups/grp-dev/members", params={"eligible": "true"}))
    assert "members" not in eligible
    assert [(e["principal_id"], [s["via"] for s in e["sources"]]) for e in eligible["eligible"]] == [
        ("alice", ["grp-sre"]),
        ("dave", ["grp-sre"]),
    ]
    owners = answered(await api.get(alice, "/api/groups/grp-ops/members", params={"access": "owner", "eligible": "true"}))
    [bob] = owners["eligible"]
    assert bob["principal_id"] == "bob" and "via" not in bob["sources"][0]  # directly, not through a group

    assert refused(await api.get(alice, "/api/groups/grp-nope/members"), 404)
    assert refused(await api.get(alice, "/api/groups/grp-ops/members", params={"access": "boss"}), 400)["targets"] == ["access"]
    refused(await api.get(None, "/api/groups/grp-ops/members"), 401)


async def test_mfa_enrolment_answers_the_new_secret_once_to_an_administrator(api):
    admin, alice = await api.sign_in("admin"), await api.sign_in("alice")
    before = await api.store.mfa_secret("carol")

    enrolled = await api.post(admin, "/api/mfa/enrollments", json={"principal_id": "carol"})
    body = answered(enrolled, 201)
    assert body["principal_id"] == "carol" and enrolled.headers["Cache-Control"] == "no-store"
    secret = pyotp.parse_uri(body["otpauth_uri"]).secret
    assert secret == await api.store.mfa_secret("carol") != before

    assert refused(await api.post(alice, "/api/mfa/enrollments", json={"principal_id": "bob"}), 403)["codes"] == [
        "not_authorized"
    ]
    wrong_code = await api.post(alice, "/api/mfa/enrollments", json={"principal_id": "alice", "mfa_code": "12345"})
    assert refused(wrong_code, 400)["targets"] == ["mfa_code"] and "12345" not in wrong_code.text
    assert refused(await api.post(admin, "/api/mfa/enrollments", json={"principal_id": "a b"}), 400)["targets"] == [
        "principal_id"
    ]
    refused(await api.post(None, "/api/mfa/enrollments", json={"principal_id": "carol"}), 401)
