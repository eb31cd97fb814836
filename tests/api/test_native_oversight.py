"""What auditors and operators read through the native endpoints, over real HTTP:
the audit log and its hash chain, the reconciler, the API's health (administrators
only), and the directory compared with PIM (anyone signed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.native import answered, refused

AUDIT_KEYS = {"at", "action", "actor", "request_id", "group_id", "access", "principal_id", "details"}


async def test_administrators_read_the_audit_log_with_filters(api):
    admin, dave, alice = await api.sign_in("admin"), await api.sign_in("dave"), await api.sign_in("alice")
    answered(await api.post(dave, "/api/groups", json={"id": "grp-web", "kind": "security"}), 201)

    [line] = answered(await api.get(admin, "/api/audit", params={"group": "grp-web"}))
    assert set(line) == AUDIT_KEYS
    assert (line["action"], line["actor"], line["details"]["kind"]) == ("group_onboarded", "dave", "security")
    assert answered(await api.get(dave, "/api/audit", params={"principal": "nobody"})) == []
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert answered(await api.get(admin, "/api/audit", params={"group": "grp-web", "since": later})) == []

    denied = refused(await api.get(alice, "/api/audit"), 403)
    assert denied["codes"] == ["not_authorized"] and "administrators" in denied["message"]
    assert refused(await api.get(admin, "/api/audit", params={"since": "2026-01-01T10:00:00"}), 400)["targets"] == ["since"]
    assert refused(await api.get(admin, "/api/audit", params={"since": "yesterday"}), 400)["targets"] == ["since"]
    assert refused(await api.get(admin, "/api/audit", params={"group": "grp web"}), 400)["targets"] == ["group"]
    refused(await api.get(None, "/api/audit"), 401)


async def test_administrators_verify_the_audit_chain_against_a_recorded_head(api):
    admin, alice, dave = await api.sign_in("admin"), await api.sign_in("alice"), await api.sign_in("dave")
    answered(await api.post(dave, "/api/groups", json={"id": "grp-web", "kind": "security"}), 201)

    report = answered(await api.get(admin, "/api/audit/verify"))
    assert report["ok"] is True and report["problem"] is None
    assert set(report) == {"ok", "rows", "unchained", "first_chained_id", "head", "problem"}
    head = f"{report['head']['id']}:{report['head']['hash']}"
    assert answered(await api.get(admin, "/api/audit/verify", params={"expect": head}))["ok"] is True

    forged = f"{report['head']['id']}:{'0' * 64}"
    broken = answered(await api.get(admin, "/api/audit/verify", params={"expect": forged}))  # 200 whether intact or not
    assert broken["ok"] is False and broken["problem"]["row_id"] == report["head"]["id"]

    assert refused(await api.get(admin, "/api/audit/verify", params={"expect": "12:nothex"}), 400)["targets"] == ["expect"]
    assert refused(await api.get(alice, "/api/audit/verify"), 403)["codes"] == ["not_authorized"]
    refused(await api.get(None, "/api/audit/verify"), 401)


async def test_the_directory_is_compared_with_pim_for_anyone_signed_in(api):
    alice = await api.sign_in("alice")
    diff = answered(await api.get(alice, "/api/directory/diff/grp-ops"))
    assert diff == {"group_id": "grp-ops", "access": "member", "missing": [], "unexpected": [], "ok": ["carol"], "in_sync": True}
    owners = answered(await api.get(alice, "/api/directory/diff/grp-ops", params={"access": "owner"}))
    assert (owners["access"], owners["ok"], owners["in_sync"]) == ("owner", [], True)

    assert refused(await api.get(alice, "/api/directory/diff/grp-nope"), 404)
    assert refused(await api.get(alice, "/api/directory/diff/grp-ops", params={"access": "boss"}), 400)["targets"] == ["access"]
    refused(await api.get(None, "/api/directory/diff/grp-ops"), 401)


async def test_administrators_run_the_reconciler_and_read_the_apis_health(api):
    admin, alice = await api.sign_in("admin"), await api.sign_in("alice")

    report = answered(await api.post(admin, "/api/reconcile"))
    assert set(report) == {"at", "revoked", "released", "unsourced", "reported"}
    assert report["revoked"] == [] and report["unsourced"] == []
    assert refused(await api.post(alice, "/api/reconcile"), 403)["codes"] == ["not_authorized"]
    refused(await api.post(None, "/api/reconcile"), 401)

    checks = answered(await api.get(admin, "/api/health"))
    assert [(c["name"], c["ok"]) for c in checks] == [("temporal", True), ("store", True)]
    assert refused(await api.get(alice, "/api/health"), 403)["codes"] == ["not_authorized"]
    refused(await api.get(None, "/api/health"), 401)
