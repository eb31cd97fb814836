"""The requester's pages in a real browser: alice activates her grp-ops membership
from My access and watches it on My requests while bob approves through the API,
without reloading the page; she cancels a request and finds it in the history; a
refusal shows next to its field. The expiry is watched on the request's own page
on the time-skipping test server (`portal.env.sleep` moves workflow time, and the
activation's own timer ends it): that server cannot list workflows, which My
access and My requests do, so those are tested on a real dev server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from pim.domain.models import AccessType
from pim.domain.policy import ActivationSettings, Policy
from tests.api.harness import APPROVALS
from tests.portal.harness import PHONE

JUSTIFICATION = "INC-42 database failover"
NO_RELOAD = "window.__portalTestMarker"


async def open_activation_form(page: Page) -> None:
    await page.get_by_role("link", name="Activate member of grp-ops").click()
    await expect(page.get_by_role("heading", name="Activate member of grp-ops")).to_be_visible()


async def test_a_duration_above_the_maximum_is_refused_next_to_duration(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "alice")
    await open_activation_form(page)
    for label in ("Duration", "Justification", "Ticket", "Start at"):
        await expect(page.get_by_label(label, exact=True)).to_be_visible()
    # A fresh multi-factor sign-in satisfies grp-ops' MFA: no code is asked for.
    await expect(page.get_by_label("MFA code")).to_have_count(0)
    await expect(page.get_by_text("At most 8 h.")).to_be_visible()

    await page.get_by_label("Duration", exact=True).fill("9h")
    await page.get_by_label("Justification", exact=True).fill(JUSTIFICATION)
    await page.get_by_role("button", name="Activate", exact=True).click()
    duration = page.get_by_label("Duration", exact=True)
    await expect(duration).to_have_attribute("aria-invalid", "true")
    await expect(duration).to_have_accessible_description(re.compile("PT9H exceeds the maximum of PT8H"))
    await expect(duration).to_have_value("9h")  # what was typed stays
    await expect(page.get_by_label("Justification", exact=True)).to_have_value(JUSTIFICATION)
    await portal.screenshot(page, "activate-refused")
    [refused] = await portal.api.pim.list(principal_id="alice")  # the workflow's admission refused it
    assert refused.state == "rejected"


async def test_alice_activates_from_my_access_and_sees_it_pending_then_active_without_a_reload(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "alice")
    await expect(page.get_by_role("heading", name="My access")).to_be_visible()
    eligible = page.get_by_role("region", name="You may activate")
    await expect(eligible.get_by_text("through grp-sre")).to_be_visible()  # grp-dev, through her grp-sre membership
    await portal.screenshot(page, "my-access")

    await open_activation_form(page)
    await page.get_by_label("Duration", exact=True).fill("30m")
    await page.get_by_label("Justification", exact=True).fill(JUSTIFICATION)
    await page.get_by_label("Ticket", exact=True).fill("INC-42")
    await portal.screenshot(page, "activate")
    await page.get_by_role("button", name="Activate", exact=True).click()
    await expect(page.get_by_role("heading", name="Request for member of grp-ops")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text=re.compile("^Pending approval$"))).to_be_visible()
    request_id = page.url.rsplit("/", 1)[1]

    await page.get_by_role("link", name="My requests", exact=True).click()
    card = page.get_by_role("region", name="Waiting").get_by_role("listitem")
    await expect(card.get_by_role("link", name="member of grp-ops")).to_be_visible()
    await expect(card.get_by_text("Pending approval")).to_be_visible()
    await page.evaluate(f"{NO_RELOAD} = 'still the same page'")

    await approve_as_bob(portal, request_id)
    active = page.get_by_role("region", name="Active").get_by_role("listitem")
    await expect(active.get_by_text("Active", exact=True)).to_be_visible()
    await expect(active.get_by_text(re.compile(r"\d+ min left"))).to_be_visible()
    await expect(page.get_by_role("region", name="Waiting").get_by_text("Nothing is waiting.")).to_be_visible()
    assert await page.evaluate(NO_RELOAD) == "still the same page"
    await portal.screenshot(page, "my-requests")

    await page.get_by_role("link", name="My access", exact=True).click()
    now = page.get_by_role("region", name="Active now")
    await expect(now.get_by_role("button", name="Deactivate member of grp-ops")).to_be_visible()
    await expect(now.get_by_role("link", name="Extend member of grp-ops")).to_be_visible()
    await expect(now.get_by_text("your activation, to you directly")).to_be_visible()
    await expect(now.get_by_text("an assignment, to you directly")).to_be_visible()  # grp-sre, assigned
    await portal.screenshot(page, "my-access-active")


async def test_a_pending_request_is_canceled_from_my_requests_and_stays_in_the_history(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "alice", "/activate/grp-ops/member")
    await page.get_by_label("Duration", exact=True).fill("1h")
    await page.get_by_label("Justification", exact=True).fill(JUSTIFICATION)
    await page.get_by_role("button", name="Activate", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=re.compile("^Pending approval$"))).to_be_visible()

    await page.get_by_role("link", name="My requests", exact=True).click()
    await page.get_by_role("button", name="Cancel the request for member of grp-ops").click()
    await expect(page.get_by_text("Request canceled.")).to_be_visible()
    past = page.get_by_role("region", name="Past").get_by_role("listitem")
    await expect(past.get_by_text("Canceled", exact=True)).to_be_visible()
    await expect(past.get_by_text(JUSTIFICATION)).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
    await portal.screenshot(page, "my-requests-history")


async def test_the_request_page_shows_it_pending_active_then_expired_without_a_reload(skipping_portal):
    portal = skipping_portal
    page = await portal.new_page()
    await portal.sign_in(page, "alice", "/activate/grp-ops/member")
    await page.get_by_label("Duration", exact=True).fill("30m")
    await page.get_by_label("Justification", exact=True).fill(JUSTIFICATION)
    await page.get_by_role("button", name="Activate", exact=True).click()
    status = page.get_by_role("status")
    await expect(status.filter(has_text=re.compile("^Pending approval$"))).to_be_visible()
    await expect(page.get_by_text("Requested: member of grp-ops.")).to_be_visible()
    await portal.screenshot(page, "request")
    await page.evaluate(f"{NO_RELOAD} = 'still the same page'")

    await approve_as_bob(portal, page.url.rsplit("/", 1)[1])
    await expect(status.filter(has_text=re.compile("^Active$"))).to_be_visible()
    await expect(page.get_by_text(re.compile(r"\(\d+ min left\)"))).to_be_visible()
    await expect(page.get_by_text("go ahead")).to_be_visible()  # bob's decision and why

    await portal.env.sleep(timedelta(minutes=31))  # past its 30 minutes, in workflow time: its own timer ends it
    await expect(status.filter(has_text=re.compile("^Expired$"))).to_be_visible()
    assert await page.evaluate(NO_RELOAD) == "still the same page"
    await expect(page.get_by_role("button", name=re.compile("^(Cancel|Deactivate)"))).to_have_count(0)
    await portal.screenshot(page, "request-expired")


async def approve_as_bob(portal, request_id: str) -> None:
    bob = await portal.token("bob")
    decided = await portal.api.patch(
        bob, f"{APPROVALS}/{request_id}/stages/1", json={"reviewResult": "Approve", "justification": "go ahead"}
    )
    assert decided.status_code == 204, decided.text


async def test_my_access_at_a_phones_width(portal):
    page = await portal.new_page(viewport=PHONE)
    await portal.sign_in(page, "alice")
    await expect(page.get_by_role("link", name="Activate member of grp-ops")).to_be_visible()
    for label in ("My access", "My requests", "Approvals"):
        await expect(page.get_by_role("link", name=label, exact=True)).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the screen
    await portal.screenshot(page, "my-access-phone")


async def test_the_mfa_code_is_asked_for_when_the_sign_in_does_not_count(portal):
    # grp-dev's policy accepts only a TOTP code: the sign-in, however fresh, does not count.
    policy = Policy(activation=ActivationSettings(require_mfa=True, mfa_methods=["totp"], max_duration=timedelta(hours=4)))
    await portal.store.set_policy("grp-dev", AccessType.member, policy, by="test")
    page = await portal.new_page()
    await portal.sign_in(page, "alice", "/activate/grp-dev/member")
    await expect(page.get_by_text("Multi-factor authentication required.")).to_be_visible()
    code = page.get_by_label("MFA code", exact=True)
    await expect(code).to_be_visible()
    await page.get_by_label("Justification", exact=True).fill("dev work for INC-7")
    await code.fill("")
    await page.get_by_role("button", name="Activate", exact=True).click()
    await expect(code).to_have_accessible_description(re.compile("Enter the code your authenticator app shows"))

    await code.fill(await portal.codes.code("alice"))
    await page.get_by_role("button", name="Activate", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=re.compile("^Active$"))).to_be_visible()  # no approval on grp-dev


async def test_extend_and_deactivate_from_the_request_page(skipping_portal):
    portal = skipping_portal
    page = await portal.new_page()
    await portal.sign_in(page, "alice", "/activate/grp-dev/member")
    await page.get_by_label("Duration", exact=True).fill("1h")
    await page.get_by_label("Justification", exact=True).fill("dev work for INC-7")
    await page.get_by_role("button", name="Activate", exact=True).click()
    status = page.get_by_role("status")
    await expect(status.filter(has_text=re.compile("^Active$"))).to_be_visible()
    await expect(page.get_by_text(re.compile(r"\(59 min left\)|\(1 h left\)"))).to_be_visible()

    await page.get_by_role("link", name="Extend member of grp-dev").click()
    await expect(page.get_by_role("heading", name="Extend member of grp-dev")).to_be_visible()
    await page.get_by_label("Extend by", exact=True).fill("30m")
    await page.get_by_role("button", name="Extend", exact=True).click()
    why = page.get_by_label("Justification", exact=True)
    await expect(why).to_have_accessible_description(re.compile("a justification is required to extend"))
    await why.fill("the failover takes longer")
    await portal.screenshot(page, "extend")
    await page.get_by_role("button", name="Extend", exact=True).click()
    await expect(page.get_by_text("Extended by PT30M: member of grp-dev.")).to_be_visible()
    await expect(page.get_by_text(re.compile(r"\(1 h (29|30) min left\)"))).to_be_visible()  # back on the request's page

    await portal.env.sleep(timedelta(minutes=6))  # past the first five minutes, when only administrators deactivate
    await page.get_by_role("button", name="Deactivate member of grp-dev").click()
    await expect(page.get_by_text("Deactivated: member of grp-dev.")).to_be_visible()
    await expect(status.filter(has_text=re.compile("^Deactivated$"))).to_be_visible()
    assert not await portal.store.has_membership("grp-dev", AccessType.member, "alice")


async def test_a_request_for_later_is_scheduled_and_canceled_before_it_starts(portal):
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    page = await portal.new_page()
    await portal.sign_in(page, "alice", "/activate/grp-dev/member")
    await page.get_by_label("Duration", exact=True).fill("1h")
    await page.get_by_label("Justification", exact=True).fill("release night INC-9")
    await page.get_by_label("Start at", exact=True).fill(start.strftime("%Y-%m-%dT%H:%M"))  # UTC
    await page.get_by_role("button", name="Activate", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=re.compile("^Scheduled$"))).to_be_visible()
    await expect(page.get_by_text(start.strftime("%Y-%m-%d %H:%M UTC")).first).to_be_visible()

    await page.get_by_role("link", name="My requests", exact=True).click()
    scheduled = page.get_by_role("region", name="Scheduled")
    await expect(scheduled.get_by_role("link", name="member of grp-dev")).to_be_visible()
    await scheduled.get_by_role("button", name="Cancel the request for member of grp-dev").click()
    await expect(page.get_by_role("region", name="Past").get_by_text("Canceled", exact=True)).to_be_visible()
    assert not await portal.store.has_membership("grp-dev", AccessType.member, "alice")
