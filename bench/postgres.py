"""A fresh PostgreSQL database for one benchmark run (BENCH_POSTGRES_URL), dropped afterwards."""

from __future__ import annotations

import os


class FreshPostgres:
    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.admin_url = admin_url
        self.name = f"pim_bench_{os.getpid()}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    async def _admin(self, statement: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    async def create(self) -> str:
        await self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        await self._admin(f"CREATE DATABASE {self.name}")
        return self.url

    async def drop(self) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
