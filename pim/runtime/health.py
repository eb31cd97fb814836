"""Health of a deployment: can we reach Temporal, and is the store at the
schema this code expects? Used by `pim health` and the worker's endpoint."""

from __future__ import annotations

import asyncio

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import BaseModel
from sqlalchemy import text
from temporalio.client import Client

from pim.runtime.settings import PimSettings
from pim.runtime.temporal import connect_with
from pim.store import Store
from pim.store.database import alembic_config


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def expected_schema(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def check_store(store: Store) -> Check:
    try:
        async with store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    except Exception as error:  # any failure to reach or read the store is the answer
        return Check(name="store", ok=False, detail=f"unreachable: {type(error).__name__}: {error}"[:300])
    head = expected_schema(store.url)
    if current != head:
        return Check(name="store", ok=False, detail=f"schema {current} but this code needs {head}: run `pim db upgrade`")
    return Check(name="store", ok=True, detail=f"schema {current}")


async def check_temporal(settings: PimSettings, timeout: float = 5.0) -> Check:
    try:
        client = await asyncio.wait_for(connect_with(settings), timeout)
    except Exception as error:
        return Check(name="temporal", ok=False, detail=f"unreachable: {type(error).__name__}: {error}"[:300])
    return await check_client(client, timeout)


async def check_client(client: Client, timeout: float = 5.0) -> Check:
    """A connected client's server: does it answer? (The HTTP API checks its own.)"""
    try:
        await asyncio.wait_for(client.service_client.check_health(), timeout)
    except Exception as error:
        return Check(name="temporal", ok=False, detail=f"unreachable: {type(error).__name__}: {error}"[:300])
    return Check(name="temporal", ok=True, detail=f"{client.service_client.config.target_host}, namespace {client.namespace}")


async def check_all(settings: PimSettings) -> list[Check]:
    store = Store.open(settings.database_url)
    try:
        return list(await asyncio.gather(check_temporal(settings), check_store(store)))
    finally:
        await store.close()
