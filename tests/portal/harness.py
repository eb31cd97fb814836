"""The portal in a real browser: the API and its portal served by uvicorn on loopback
(tests/api/harness.py's `running_api`, with the portal on), the development issuer
on a port of its own with the portal's client (`pim-portal`) registered, a worker on
a time-skipping Temporal test server, and Debian's Chromium driven by Playwright.

    async def test_something(portal):
        page = await portal.new_page()                 # a browser context of its own: one person
        await portal.sign_in(page, "alice")            # through the issuer's real sign-in page
        await page.get_by_role("link", name="My requests").click()
        await portal.screenshot(page, "my-requests")   # docs/screenshots/my-requests.png
        bob = await portal.token("bob")                # a bearer token, to act through the API
        await portal.api.patch(bob, f"{APPROVALS}/{request_id}/stages/1", json={...})

People sign in with a TOTP code. A person's time steps are accepted once each, in
increasing order, one step either side of now: `Codes` hands out the next one, so a
person signs in about three times in 30 seconds before `code` waits for the next."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from pim.identity.issuer import pim_portal_client
from pim.identity.totp import TOTP_INTERVAL, current_code
from pim.store import Store
from tests.api.harness import Api, device_sign_in, running_api
from tests.identity.loopback import TEST_CLIENTS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# Debian's package, installed by `make test` (.ci/install-chromium); never a download.
SESSION_KEY = SecretStr("test:" + base64.b64encode(os.urandom(32)).decode())
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1200, "height": 900}
MARGIN = 5.0  # seconds: a step's code is not offered this close to its window's end


@dataclass
class Codes:
    """TOTP codes for the store's users. A user's time steps are accepted once each and
    in increasing order (pim/store/identity.py), within one step either side of now: each
    code handed out here is of a later step than the user's last, waiting when need be."""

    store: Store
    last: dict[str, int] = field(default_factory=dict)

    async def code(self, user: str) -> str:
        secret = await self.store.mfa_secret(user)
        assert secret is not None, f"{user} has no TOTP enrolment"
        while True:
            now = time.time()
            step = int(now // TOTP_INTERVAL)
            left = TOTP_INTERVAL - now % TOTP_INTERVAL
            earliest = step - 1 if left >= MARGIN else step  # the previous step, while it is still accepted
            chosen = max(earliest, self.last.get(user, earliest - 1) + 1)
            if chosen <= step + 1:
                self.last[user] = chosen
                return current_code(secret, chosen * TOTP_INTERVAL + 1)
            await asyncio.sleep(left + 0.1)


@dataclass
class Portal:
    base: str  # http://127.0.0.1:PORT: the portal and the API
    api: Api  # tests/api/harness.Api on the same server, for acting through the API
    env: WorkflowEnvironment
    browser: Browser
    codes: Codes
    contexts: list[BrowserContext] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.api.store

    def url(self, path: str) -> str:
        return self.base + path

    async def new_page(self, viewport: dict[str, int] | None = None) -> Page:
        """A page in a fresh browser context (cookies of its own: one person each)."""
        context = await self.browser.new_context(viewport=viewport or DESKTOP, base_url=self.base)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return await context.new_page()

    async def sign_in(self, page: Page, user: str, path: str = "/") -> None:
        """Open `path` signed out, go through the issuer's sign-in page as `user` (fields
        "User" and "Code", button "Sign in"), and land back on `path`."""
        await page.goto(self.url(path))
        await self.fill_sign_in(page, user)
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    async def fill_sign_in(self, page: Page, user: str) -> None:
        """The issuer's form, on the page now showing it."""
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        await page.get_by_label("User", exact=True).fill(user)
        await page.get_by_label("Code", exact=True).fill(await self.codes.code(user))
        await page.get_by_role("button", name="Sign in").click()

    async def token(self, user: str) -> str:
        """A bearer token for `user` (the device flow of the command line's client)."""
        if user not in self.tokens:
            self.tokens[user] = await device_sign_in(self.api.idp, user, await self.codes.code(user))
        return self.tokens[user]

    async def screenshot(self, page: Page, name: str) -> Path:
        """The whole page as docs/screenshots/<name>.png (the README shows them)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


@asynccontextmanager
async def running_portal(
    env: WorkflowEnvironment, store: Store, browser: Browser, issuer: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[Portal]:
    """The API with its portal for `store` (PimSettings overridden by `settings`, the
    issuer's IssuerSettings by `issuer`)."""
    issuer = {"clients": (*TEST_CLIENTS, pim_portal_client()), **(issuer or {})}
    settings = {"portal": True, "portal_session_key": SESSION_KEY, **settings}
    async with running_api(env, store, issuer=issuer, **settings) as api:
        portal = Portal(api.base, api, env, browser, Codes(store))
        try:
            yield portal
        finally:
            for context in portal.contexts:
                await context.close()
