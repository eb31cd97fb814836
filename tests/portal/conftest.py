"""The portal's tests: a real browser (Debian's Chromium, driven by Playwright) on the
API and portal served over loopback (tests/portal/harness.py). They run on SQLite
alone: the pages are the subject, and the store's own tests cover PostgreSQL.

    async def test_it(portal):             # a Temporal dev server of its own: real time, lists work
        page = await portal.new_page()
        await portal.sign_in(page, "alice")

    async def test_later(skipping_portal): # the time-skipping test server: `await portal.env.sleep(...)`
        ...                                # moves workflow time on, but it cannot list workflows, so the
                                           # pages that list requests (My access, My requests) fail there

Each test gets a dev server of its own (about 0.1 s to start): the demo tenant's
workflow ids (activation/grp-ops/member/alice) and its lists never see another
test's runs."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.conftest import dev_server, sqlite_store
from tests.portal.harness import CHROMIUM, running_portal


@pytest_asyncio.fixture
async def store(tmp_path, migrated_template):
    async with sqlite_store(tmp_path, migrated_template) as fresh:
        yield fresh


@pytest_asyncio.fixture(scope="session")
async def browser():
    """One headless Chromium for the session; each person gets a context of their own."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (.ci/install-chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture
async def portal_env():
    """A Temporal dev server for one test."""
    async with dev_server() as env:
        yield env


@pytest_asyncio.fixture
async def portal(portal_env, demo, browser):
    """The demo tenant's portal and API on loopback, its worker on a dev server of its own."""
    async with running_portal(portal_env, demo, browser) as served:
        yield served


@pytest_asyncio.fixture
async def skipping_portal(time_env, demo, browser):
    """The same on a time-skipping test server, for what takes time (an expiry)."""
    async with running_portal(time_env, demo, browser) as served:
        yield served
