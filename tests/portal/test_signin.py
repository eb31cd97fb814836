"""Signing in and out of the portal, and what a signed-out visitor sees."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from playwright.async_api import expect

from tests.portal.harness import running_portal

NAV = ["My access", "My requests", "Approvals"]


async def test_a_signed_out_visitor_sees_only_the_sign_in_and_comes_back_where_they_were(portal):
    page = await portal.new_page()
    await page.goto(portal.url("/?x=1"))
    # The issuer's sign-in page, nothing of the portal.
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    for label in [*NAV, "Administration"]:
        await expect(page.get_by_role("link", name=label)).to_have_count(0)
    await portal.screenshot(page, "sign-in")
    await portal.fill_sign_in(page, "alice")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert page.url == portal.url("/?x=1")
    for label in NAV:
        await expect(page.get_by_role("link", name=label, exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Administration")).to_have_count(0)  # alice holds no role
    await expect(page.get_by_text("Alice", exact=True)).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    await page.goto(portal.url("/"))
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_a_form_posted_without_its_token_is_refused(portal):
    page = await portal.new_page()
    await portal.sign_in(page, "alice")
    token = await page.locator("form[action='/signout'] input[name=csrf]").get_attribute("value")
    assert token
    # The session cookie goes with these requests (the browser context's), the token does not.
    for form in ({}, {"csrf": "forged"}, {"csrf": token[:-2] + "xx"}):
        refused = await page.request.post(portal.url("/signout"), form=form)
        assert refused.status == 403, form
        assert "This form cannot be accepted" in await refused.text()
    await page.reload()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()  # still signed in
    accepted = await page.request.post(portal.url("/signout"), form={"csrf": token})
    assert accepted.status == 200 and "You are signed out" in await accepted.text()


async def test_only_a_same_site_path_is_followed_after_the_sign_in(portal):
    unsafe_paths = ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/signout", "javascript:alert(1)")
    for unsafe, user in zip(unsafe_paths, ("alice", "bob", "carol", "dave", "admin")):  # one sign-in each: no wait for codes
        page = await portal.new_page()
        await page.goto(portal.url(f"/signin?next={quote(unsafe)}"))
        await portal.fill_sign_in(page, user)
        await expect(page.get_by_role("heading", name="My access")).to_be_visible()
        assert page.url == portal.url("/"), unsafe


async def test_the_session_renews_its_token_and_survives_concurrent_renewals(portal_env, demo, browser):
    # Tokens of 30 seconds: less than the renewal margin, so every request renews the
    # session's token with its (rotating) refresh token.
    async with running_portal(portal_env, demo, browser, issuer={"token_lifetime": timedelta(seconds=30)}) as portal:
        page = await portal.new_page()
        await portal.sign_in(page, "alice")
        for _ in range(3):
            await page.reload()
            await expect(page.get_by_role("heading", name="My access")).to_be_visible()
        # A page and its live parts renewing at once share one renewal: a refresh token
        # used twice would end the whole sign-in at the issuer.
        statuses = await page.evaluate(
            "Promise.all([1, 2, 3, 4, 5].map(() => fetch('/access/live', {redirect: 'manual'}).then(r => r.status)))"
        )
        assert statuses == [200] * 5, statuses
        await page.goto(portal.url("/requests"))
        await expect(page.get_by_role("heading", name="My requests")).to_be_visible()
