"""The administration pages in a real browser: dave (Groups Administrator) onboards
a group and edits its policy, the refusal shown next to its field; admin (Global
Administrator) assigns, extends and sees where access comes from, reads the audit
with its hash chain's verdict and downloads it as CSV, and runs the reconciler; alice
(no role) is refused the whole of /admin."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from pim.domain.models import AccessType


async def test_an_administrator_onboards_a_group_and_edits_its_policy(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "dave")
    await page.get_by_role("link", name="Administration", exact=True).click()
    await expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_visible()

    # A Groups Administrator may not onboard a role-assignable group: the API says why, above the form.
    group_id = page.get_by_label("Group id", exact=True)
    await group_id.fill("grp-vault")
    await page.get_by_label("Role-assignable", exact=True).check()
    await page.get_by_role("button", name="Onboard", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("dave may not onboard grp-vault: needs Global Administrator")
    await expect(group_id).to_have_value("grp-vault")  # what was typed stays

    await group_id.fill("grp-web")
    await page.get_by_label("Role-assignable", exact=True).uncheck()
    await page.get_by_role("button", name="Onboard", exact=True).click()
    await expect(page.get_by_role("heading", name="grp-web", exact=True)).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Onboarded grp-web")
    assert (group := await portal.store.group("grp-web")) is not None and group.pim_enabled

    await page.get_by_role("link", name="Member policy", exact=True).click()
    await expect(page.get_by_role("heading", name="Member policy of grp-web")).to_be_visible()
    longest = page.get_by_label("Maximum activation duration", exact=True)
    await expect(longest).to_have_value("PT8H")
    await longest.fill("48h")
    await page.get_by_label("Activation requires a ticket", exact=True).check()
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(longest).to_have_attribute("aria-invalid", "true")
    await expect(longest).to_have_accessible_description(re.compile("must be between PT30M and PT24H"))
    await expect(longest).to_have_value("48h")
    await expect(page.get_by_label("Activation requires a ticket", exact=True)).to_be_checked()
    await portal.screenshot(page, "admin-policy")
    assert (await portal.store.policy("grp-web", AccessType.member))[0].activation.max_duration == timedelta(hours=8)

    await longest.fill("4h")
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text(
        re.compile(r"Saved the member policy of grp-web: 2 settings changed")
    )
    await expect(longest).to_have_value("PT4H")
    await expect(longest).not_to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Activation requires a ticket", exact=True)).to_be_checked()
    policy, _ = await portal.store.policy("grp-web", AccessType.member)
    assert policy.activation.max_duration == timedelta(hours=4) and policy.activation.require_ticket

    await page.get_by_role("navigation", name="Administration").get_by_role("link", name="Groups").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="grp-web", exact=True))
    await expect(row).to_contain_text("In PIM")
    await portal.screenshot(page, "admin-groups")

    # Offboarded from its page, then onboarded again from the list.
    await row.get_by_role("link", name="grp-web", exact=True).click()
    await page.get_by_role("button", name="Offboard grp-web").click()
    await expect(page.get_by_role("status")).to_contain_text("grp-web is out of PIM; 0 eligible assignments ended.")
    await expect(page.get_by_role("link", name="Member policy")).to_have_count(0)
    await page.get_by_role("link", name="← Groups").click()
    await expect(row).to_contain_text("Not in PIM")
    await row.get_by_role("button", name="Onboard grp-web").click()
    await expect(page.get_by_role("status")).to_contain_text("Onboarded grp-web")
    assert (group := await portal.store.group("grp-web")) is not None and group.pim_enabled


async def test_an_administrator_assigns_and_extends_and_sees_where_access_comes_from(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "admin", "/admin/groups/grp-dev")
    await expect(page.get_by_role("heading", name="grp-dev", exact=True)).to_be_visible()
    eligible = page.get_by_role("table", name="Eligible members")
    await expect(eligible.get_by_role("row").filter(has_text="alice")).to_contain_text("through grp-sre")

    await page.get_by_role("link", name="Assign", exact=True).click()
    await page.get_by_label("Principal", exact=True).fill("bob")
    duration = page.get_by_label("Duration", exact=True)
    await duration.fill("400d")
    await page.get_by_label("Justification", exact=True).fill("on call for dev")
    await page.get_by_role("button", name="Assign", exact=True).click()
    await expect(duration).to_have_accessible_description(re.compile("P400D exceeds the maximum of P365D"))
    await expect(page.get_by_label("Principal", exact=True)).to_have_value("bob")

    await duration.fill("30d")
    await page.get_by_role("button", name="Assign", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Assigned: eligible member of grp-dev to bob.")
    await expect(eligible.get_by_role("row").filter(has_text="bob")).to_contain_text("assignment asg-")
    assignments = page.get_by_role("table", name="Assignments")
    await expect(assignments.get_by_role("row").filter(has_text="bob")).to_contain_text("on call for dev")
    await portal.screenshot(page, "admin-group")

    await page.get_by_role("link", name="Extend eligible member assignment of bob").click()
    await page.get_by_label("Duration", exact=True).fill("10d")
    await page.get_by_role("button", name="Extend", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text(re.compile(r"Extended assignment asg-\w+: it ends"))
    (row,) = [a for a in await portal.store.assignments("grp-dev", "bob")]
    assert row.ends_at is not None and row.ends_at - datetime.now(UTC) > timedelta(days=39)

    # Removing it in its first five minutes is refused: the page says why.
    await page.get_by_role("link", name="Remove eligible member assignment of bob").click()
    await page.get_by_role("button", name="Remove", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("cannot be removed in its first 5 minutes")


async def test_the_audit_shows_its_lines_and_verdict_and_downloads_as_csv(portal):
    token = await portal.token("admin")
    onboarded = await portal.api.post(token, "/api/groups", json={"id": "grp-web", "kind": "security"})
    assert onboarded.status_code == 201, onboarded.text
    changed = await portal.api.patch(token, "/api/policies/grp-web/member", json={"settings": ["activation.max_duration=PT2H"]})
    assert changed.status_code == 200, changed.text
    assignment = {
        "group_id": "grp-dev",
        "principal_id": "bob",
        "kind": "eligible",
        "duration": "P30D",
        "justification": "on call",
    }
    assigned = await portal.api.post(token, "/api/assignments", json=assignment)
    assert assigned.status_code == 201, assigned.text
    page = await portal.new_page()
    await portal.sign_in(page, "admin", "/admin/audit")
    chain = page.get_by_role("region", name="Hash chain")
    await expect(chain).to_contain_text("Intact.")
    lines = page.get_by_role("table", name="Lines")
    await expect(lines.get_by_role("row").filter(has_text="group_onboarded")).to_contain_text("grp-web")
    await expect(lines.get_by_role("row").filter(has_text="assignment_created")).to_contain_text("bob")
    await portal.screenshot(page, "admin-audit")

    await page.get_by_label("Group", exact=True).fill("grp-web")
    await page.get_by_role("button", name="Filter", exact=True).click()
    await expect(lines.get_by_role("row")).to_have_count(3)  # the header and grp-web's two lines
    await expect(page.get_by_text("2 lines match.")).to_be_visible()

    async with page.expect_download() as started:
        await page.get_by_role("link", name="Download CSV").click()
    download = await started.value
    assert re.fullmatch(r"audit-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    with open(await download.path(), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(r["action"], r["actor"], r["group_id"]) for r in rows] == [
        ("group_onboarded", "admin", "grp-web"),
        ("policy_changed", "admin", "grp-web"),
    ]
    assert json.loads(rows[0]["details"]) == {"kind": "security", "role_assignable": False}
    assert json.loads(rows[1]["details"])["changes"]["activation.max_duration"] == {"old": "PT8H", "new": "PT2H"}

    # A head recorded earlier: a malformed one is refused at its field, the current one holds.
    expected = page.get_by_label("Expected head", exact=True)
    await expected.fill("not-a-head")
    await page.get_by_role("button", name="Verify", exact=True).click()
    await expect(expected).to_have_attribute("aria-invalid", "true")
    head = (await page.locator("code.hash").inner_text()).strip()
    await expected.fill(head)
    await page.get_by_role("button", name="Verify", exact=True).click()
    await expect(chain).to_contain_text("Intact.")
    await expect(lines.get_by_role("row")).to_have_count(3)  # the filter stays


async def test_an_administrator_sees_the_reconcile_status_and_runs_it(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "admin", "/admin/reconcile")
    for check in ("Temporal", "Store"):
        card = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=check, exact=True))
        await expect(card).to_contain_text("OK")
    await page.get_by_role("button", name="Run the reconciler now").click()
    await expect(page.get_by_role("status")).to_contain_text("Run of")


async def test_someone_without_a_role_is_refused_the_administration(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "alice")
    await expect(page.get_by_role("link", name="Administration")).to_have_count(0)
    for path in ("/admin", "/admin/groups/grp-ops", "/admin/groups/grp-ops/policy/member", "/admin/audit", "/admin/audit.csv"):
        answer = await page.goto(portal.url(path))
        assert answer is not None and answer.status == 403, path
        await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        await expect(page.get_by_text("Administration is for administrators")).to_be_visible()
    token = await page.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    refused = await page.request.post(portal.url("/admin/groups"), form={"csrf": token or "", "id": "grp-x", "kind": "security"})
    assert refused.status == 403
    assert await portal.store.group("grp-x") is None
