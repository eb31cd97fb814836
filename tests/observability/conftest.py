"""Observability tests: metrics scraped from the worker's Prometheus endpoint, log
lines captured as JSON, spans kept in memory. The store plays no part in what is
observed, so they run on SQLite alone."""

from __future__ import annotations

import re
import socket

import httpx
import pytest_asyncio

from tests.conftest import sqlite_store
from tests.polling import eventually

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest_asyncio.fixture
async def store(tmp_path, migrated_template):
    async with sqlite_store(tmp_path, migrated_template) as fresh:
        yield fresh


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of `name` whose labels include `labels` (None: no such sample)."""
    total = None
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(LABEL.findall(match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total = (total or 0.0) + float(match["value"])
    return total


async def scrape_until(port: int, ready, timeout: float = 15.0) -> str:
    """GET /metrics until `ready(text)` holds, and return that text; the test fails,
    showing the last text, when it does not within `timeout` seconds."""
    async with httpx.AsyncClient() as http:

        async def scrape() -> str:
            return (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text

        return await eventually(
            scrape, until=ready, what=f"the awaited samples on :{port}/metrics", timeout=timeout, interval=0.2
        )
