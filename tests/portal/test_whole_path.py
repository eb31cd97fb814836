"""The whole path in the browser, as the issue tells it: alice signs in and activates
grp-ops membership; bob opens the link from his notification, signs in, lands on the
request and approves it; alice's page shows it active without a reload; it expires
and her page shows it expired. On the time-skipping test server, so that the expiry
is the activation's own timer (the request's page needs no workflow list)."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.async_api import expect

from pim.domain.models import AccessType
from tests.portal.test_approvals import link_in_email, notification_to

NO_RELOAD = "window.__wholePathMarker"


async def test_alice_activates_bob_approves_from_his_notification_and_it_expires(skipping_portal):
    portal = skipping_portal

    # 1. alice signs in and activates grp-ops membership. (Its form, the target of My
    #    access's "Activate member of grp-ops": this server cannot list, which My access does.)
    alice = await portal.new_page()
    await portal.sign_in(alice, "alice", "/activate/grp-ops/member")
    await alice.get_by_label("Duration", exact=True).fill("30m")
    await alice.get_by_label("Justification", exact=True).fill("INC-42 database failover")
    await alice.get_by_label("Ticket", exact=True).fill("INC-42")
    await alice.get_by_role("button", name="Activate", exact=True).click()
    status = alice.get_by_role("status")
    await expect(status.filter(has_text=re.compile("^Pending approval$"))).to_be_visible()
    request_id = alice.url.rsplit("/", 1)[1]
    await alice.evaluate(f"{NO_RELOAD} = 'the same page'")

    # 2. bob opens the link from his notification, signs in, lands on the request, approves.
    link = await link_in_email(portal, await notification_to(portal, "bob", request_id))
    bob = await portal.new_page()
    await bob.goto(link)
    await portal.fill_sign_in(bob, "bob")
    await expect(bob.get_by_role("heading", name="Request for member of grp-ops")).to_be_visible()
    assert bob.url == link
    # an approver's view of the request belongs to Approvals, and leads back there
    await expect(bob.get_by_role("link", name="Approvals", exact=True)).to_have_attribute("aria-current", "page")
    await expect(bob.get_by_role("link", name="Back to Approvals")).to_be_visible()
    decision = bob.get_by_role("form", name="Your decision")
    await decision.get_by_label("Justification", exact=True).fill("INC-42 confirmed")
    await decision.get_by_role("button", name="Approve", exact=True).click()
    await expect(bob.get_by_role("status").filter(has_text="Approved.")).to_be_visible()

    # 3. alice's page shows it active, without a reload; she holds the membership.
    await expect(status.filter(has_text=re.compile("^Active$"))).to_be_visible()
    await expect(alice.get_by_text("INC-42 confirmed")).to_be_visible()  # bob's decision and why
    assert await portal.store.has_membership("grp-ops", AccessType.member, "alice")

    # 4. past its 30 minutes it expires: her page says so, and the membership is gone.
    await portal.env.sleep(timedelta(minutes=31))
    await expect(status.filter(has_text=re.compile("^Expired$"))).to_be_visible()
    assert await alice.evaluate(NO_RELOAD) == "the same page"
    assert not await portal.store.has_membership("grp-ops", AccessType.member, "alice")
