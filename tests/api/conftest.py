from __future__ import annotations

import pytest_asyncio

from tests.api.harness import running_api


@pytest_asyncio.fixture
async def api(time_env, demo):
    async with running_api(time_env, demo) as served:
        yield served
