"""The approver's side in a real browser: bob follows the link in his notification,
signs in on the way and lands on the request, and approves it; the inbox lists what
waits for him with who, what, why, ticket, how long and the time left, and what he
decided; refusals of a decision are said in the request's page (alice deciding her
own request, a second approver after the first)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from pim.domain.models import AccessType
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.notifications.channels import EmailChannel
from pim.notifications.channels.webhook import payload
from pim.notifications.model import Notification
from pim.runtime.settings import PimSettings
from tests.api.harness import APPROVALS, REQUESTS
from tests.polling import eventually
from tests.portal.harness import PHONE

JUSTIFICATION = "INC-42 database failover"
HEADING = "Request for member of grp-ops"


async def ask(portal, user: str = "alice", duration: str = "PT2H", ticket: str | None = "INC-42") -> str:
    """`user` asks for grp-ops membership through the API; the request's id."""
    body = {
        "action": "selfActivate",
        "accessId": "member",
        "principalId": user,
        "groupId": "grp-ops",
        "justification": JUSTIFICATION,
        "scheduleInfo": {
            "startDateTime": datetime.now(UTC).isoformat(),
            "expiration": {"type": "afterDuration", "duration": duration},
        },
    }
    if ticket:
        body["ticketInfo"] = {"ticketNumber": ticket, "ticketSystem": "jira"}
    created = await portal.api.post(await portal.token(user), REQUESTS, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "PendingApproval"
    return str(created.json()["id"])


async def notification_to(portal, approver: str, request_id: str) -> Notification:
    """The approval request `approver` was sent, as the store's outbox holds it."""

    async def find() -> Notification | None:
        for row in await portal.store.notifications(event="activation_requested"):
            found = Notification.model_validate(row.payload)
            if found.api_request_id == request_id and [r.principal_id for r in found.recipients] == [approver]:
                return found
        return None

    return await eventually(find, what=f"the approval request sent to {approver}")


async def link_in_email(portal, notification: Notification) -> str:
    """The link in the e-mail the channel would send (PIM_PORTAL_URL set as the worker's)."""
    settings = PimSettings(smtp_host="mail.invalid", portal_url=portal.base + "/")
    message = EmailChannel.from_settings(settings).build(notification)
    assert message is not None
    body = message.get_content()
    assert "pim approve" in body and "pim deny" in body  # the commands stay
    [link] = re.findall(r"https?://\S+/requests/\S+", body)
    assert payload(notification, "json", settings.portal_url)["link"] == link  # the webhook's, the same
    return str(link)


async def test_bob_opens_the_link_in_his_notification_signs_in_lands_on_the_request_and_approves(portal):
    request_id = await ask(portal)
    link = await link_in_email(portal, await notification_to(portal, "bob", request_id))
    assert link == portal.url(f"/requests/{request_id}")

    page = await portal.new_page()
    await page.goto(link)  # signed out: the issuer's sign-in first, then back to the request
    await portal.fill_sign_in(page, "bob")
    await expect(page.get_by_role("heading", name=HEADING)).to_be_visible()
    assert page.url == link
    decision = page.get_by_role("form", name="Your decision")
    await expect(decision.get_by_role("button", name="Deny", exact=True)).to_be_visible()
    await decision.get_by_label("Justification", exact=True).fill("go ahead, INC-42 is real")
    await portal.screenshot(page, "decision")

    await decision.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text="Approved.")).to_be_visible()
    await expect(page.get_by_role("heading", name=HEADING)).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="Active")).to_be_visible()
    await expect(page.get_by_text("You approved this request")).to_be_visible()
    await expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    status = (await portal.api.get(await portal.token("alice"), f"{REQUESTS}/{request_id}")).json()
    assert status["status"] in ("Granted", "Provisioned")


async def test_the_inbox_lists_who_what_why_ticket_how_long_and_the_time_left_then_what_bob_decided(portal):
    denied = await ask(portal, ticket=None)
    bob = await portal.token("bob")
    refused = await portal.api.patch(
        bob, f"{APPROVALS}/{denied}/stages/1", json={"reviewResult": "Deny", "justification": "not now"}
    )
    assert refused.status_code == 204, refused.text
    await eventually(
        lambda: portal.api.get(bob, f"{REQUESTS}/{denied}"), what="denied", until=lambda r: r.json()["status"] == "Denied"
    )
    waiting = await ask(portal, duration="PT2H30M")

    page = await portal.new_page()
    await portal.sign_in(page, "bob", "/approvals")
    await expect(page.get_by_role("heading", name="Approvals", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Approvals", exact=True)).to_have_attribute("aria-current", "page")
    inbox = page.get_by_role("region", name="Waiting for your decision").get_by_role("listitem")
    await expect(inbox).to_have_count(1)
    await expect(inbox.get_by_role("link", name="alice: member of grp-ops")).to_have_attribute("href", f"/requests/{waiting}")
    for fact in ("alice", "member of grp-ops", JUSTIFICATION, "jira INC-42", "2 h 30 min", "1 of bob"):
        await expect(inbox.get_by_text(fact, exact=True)).to_be_visible()
    await expect(inbox.get_by_text(re.compile(r"^\d+ h \d+ min left to decide$"))).to_be_visible()  # 24 h to decide
    decided = page.get_by_role("region", name="Decided by you").get_by_role("listitem")
    await expect(decided).to_have_count(1)
    await expect(decided.get_by_role("link", name="alice: member of grp-ops")).to_have_attribute("href", f"/requests/{denied}")
    await expect(decided.get_by_text("Denied", exact=True)).to_be_visible()
    await expect(decided.get_by_text(re.compile("Denied,.*“not now”", re.S))).to_be_visible()
    await portal.screenshot(page, "approvals")
    # Graph's list behind it: waiting first (a stage assigned to bob), then what he decided.
    mine = (await portal.api.get(bob, f"{APPROVALS}/filterByCurrentUser(on='approver')")).json()["value"]
    assert [(a["id"], [s["assignedToMe"] for s in a["stages"]]) for a in mine] == [(waiting, [True]), (denied, [False])]
    assert (await portal.api.get(await portal.token("alice"), f"{APPROVALS}/filterByCurrentUser(on='approver')")).json()[
        "value"
    ] == []  # her own requests are never hers to decide
    live = await page.request.get(portal.url("/approvals/live"), headers={"HX-Request": "true"})
    assert live.status == 200 and "alice: member of grp-ops" in await live.text()

    await inbox.get_by_role("link", name="alice: member of grp-ops").click()
    await expect(page.get_by_role("heading", name=HEADING)).to_be_visible()
    await expect(page.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    await page.set_viewport_size(PHONE)
    await page.goto(portal.url("/approvals"))
    await expect(page.get_by_role("link", name="alice: member of grp-ops")).to_have_count(2)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


async def post_decision(page: Page, request_id: str, decision: str, justification: str) -> int:
    """What a form left open on another page would post: the decision, with this session's CSRF token."""
    token = await page.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    async with page.expect_navigation() as navigation:
        await page.evaluate(
            """([action, token, justification]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                for (const [name, value] of [["csrf", token], ["stage", "1"], ["justification", justification]]) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.append(input);
                }
                document.body.append(form);
                form.submit();
            }""",
            [f"/requests/{request_id}/{decision}", token, justification],
        )
    response = await navigation.value
    assert response is not None
    return response.status


async def test_alice_deciding_her_own_request_is_told_so_in_the_page(portal):
    request_id = await ask(portal)
    page = await portal.new_page()
    await portal.sign_in(page, "alice", f"/requests/{request_id}")
    await expect(page.get_by_role("heading", name=HEADING)).to_be_visible()
    # No decision for her to make: the page says why, and offers none.
    await expect(page.get_by_text("Nobody approves their own request")).to_be_visible()
    await expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)

    assert await post_decision(page, request_id, "approve", "I trust myself") == 403
    await expect(page.get_by_role("heading", name=HEADING)).to_be_visible()  # the request's page, not an error page
    await expect(page.get_by_role("alert")).to_have_text("You cannot decide this request: nobody approves their own request.")
    await expect(page.get_by_role("status").filter(has_text="Pending approval")).to_be_visible()
    assert (await portal.api.get(await portal.token("alice"), f"{REQUESTS}/{request_id}")).json()["status"] == "PendingApproval"


async def test_a_second_approver_after_the_first_is_told_it_was_already_decided(portal):
    policy = Policy(
        activation=ActivationSettings(
            approval=[ApprovalStage(approvers=["bob", "admin"], required=1)],
            require_mfa=True,
            require_justification=True,
            max_duration=timedelta(hours=8),
        )
    )
    await portal.store.set_policy("grp-ops", AccessType.member, policy, by="admin")
    request_id = await ask(portal)
    bob, admin = await portal.new_page(), await portal.new_page()
    await portal.sign_in(bob, "bob", f"/requests/{request_id}")
    await portal.sign_in(admin, "admin", f"/requests/{request_id}")
    for page in (bob, admin):
        await expect(page.get_by_role("button", name="Approve", exact=True)).to_be_visible()

    await bob.get_by_label("Justification", exact=True).fill("go ahead")
    await bob.get_by_role("button", name="Approve", exact=True).click()
    await expect(bob.get_by_role("status").filter(has_text="Approved.")).to_be_visible()

    await admin.get_by_label("Justification", exact=True).fill("fine by me")
    async with admin.expect_navigation() as navigation:
        await admin.get_by_role("button", name="Deny", exact=True).click()
    assert (await navigation.value).status == 409
    await expect(admin.get_by_role("heading", name=HEADING)).to_be_visible()
    await expect(admin.get_by_role("alert")).to_have_text(
        "This request was already decided: approved by bob. Your decision was not recorded."
    )
    await expect(admin.get_by_role("button", name="Deny", exact=True)).to_have_count(0)
    status = (await portal.api.get(await portal.token("alice"), f"/api/requests/{request_id}")).json()
    assert [(d["approver_id"], d["decision"]) for d in status["stages"][0]["decisions"]] == [("bob", "approve")]
