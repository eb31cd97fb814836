"""GraphDirectory against a local fake of Microsoft Graph (graph_fake.py): no
tenant is reachable from here, so these check the client against Graph's
documented answers, not against Graph itself."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from datetime import timedelta

import pytest
import pytest_asyncio
import structlog
from temporalio.exceptions import ApplicationError

from pim.directories import build_directory, msgraph
from pim.directories.msgraph import GraphDirectory
from pim.domain.models import AccessType
from pim.runtime.settings import PimSettings
from tests.directories.graph_fake import ALREADY_EXISTS, EXPIRED, NOT_FOUND, GraphFake

GROUP = "0c1f6a4e-8d7b-4b52-9a57-3f0b2c1d9e01"
OTHER_GROUP = "5d2e7b3f-9e8c-4c63-8b68-4a1c3d2e0f12"
MISSING_GROUP = "deadbeef-0000-4000-8000-000000000000"
ALICE = "a11ce000-1111-4111-8111-111111111111"
BOB = "b0b00000-2222-4222-8222-222222222222"
CAROL = "ca201000-3333-4333-8333-333333333333"
GHOST = "90057000-4444-4444-8444-444444444444"  # no such directory object
MEMBER, OWNER = AccessType.member, AccessType.owner


@pytest.fixture
def fake():
    with GraphFake(page_size=2) as graph_fake:
        graph_fake.add_group(GROUP)
        graph_fake.add_group(OTHER_GROUP)
        graph_fake.add_objects(ALICE, BOB, CAROL)
        yield graph_fake


def directory_for(fake: GraphFake, **kwargs) -> GraphDirectory:
    return GraphDirectory(
        tenant_id=fake.tenant_id,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        authority=fake.authority,
        base_url=fake.base_url,
        **kwargs,
    )


@pytest_asyncio.fixture
async def graph(fake):
    directory = directory_for(fake)
    yield directory
    await directory.aclose()


async def failure(awaitable) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await awaitable
    return caught.value


async def test_add_and_remove_member_and_owner(graph, fake):
    await graph.add(GROUP, MEMBER, ALICE)
    await graph.add(GROUP, OWNER, BOB)
    assert fake.groups[GROUP] == {"members": [ALICE], "owners": [BOB]}
    assert await graph.holds(GROUP, MEMBER, ALICE) and not await graph.holds(GROUP, OWNER, ALICE)
    assert await graph.holders(GROUP, OWNER) == {BOB}
    # The reference is Graph's public directoryObjects URL, whatever host we talk to.
    assert fake.graph_calls("POST", f"/groups/{GROUP}/members/$ref")
    await graph.remove(GROUP, MEMBER, ALICE)
    await graph.remove(GROUP, OWNER, BOB)
    assert fake.groups[GROUP] == {"members": [], "owners": []}
    assert await graph.holders(GROUP, MEMBER) == set()
    assert [e.status for e in fake.graph_calls("DELETE")] == [204, 204]


async def test_add_twice_is_success_after_graphs_already_exists_answer(graph, fake):
    for access, collection in ((MEMBER, "members"), (OWNER, "owners")):
        await graph.add(GROUP, access, ALICE)
        await graph.add(GROUP, access, ALICE)
        assert fake.groups[GROUP][collection] == [ALICE]
        refused = fake.answered(400)[-1]
        assert refused.body["error"]["code"] == "Request_BadRequest"
        assert refused.body["error"]["message"] == ALREADY_EXISTS.format(collection)


async def test_remove_absent_is_success_after_graphs_not_found_answer(graph, fake):
    await graph.remove(GROUP, MEMBER, ALICE)
    await graph.remove(GROUP, OWNER, GHOST)
    deletes = fake.graph_calls("DELETE")
    assert [e.status for e in deletes] == [404, 404]
    assert deletes[0].body["error"] == {
        **deletes[0].body["error"],
        "code": "Request_ResourceNotFound",
        "message": NOT_FOUND.format(ALICE),
    }
    # Each 404 was told apart from a missing group by asking for the group.
    assert [e.status for e in fake.graph_calls("GET", f"/groups/{GROUP}?$select=id")] == [200, 200]


async def test_holders_follow_paging(graph, fake):
    many = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(5)]
    fake.add_group(GROUP, members=many, owners=many[:3])
    assert await graph.holders(GROUP, MEMBER) == set(many)
    assert len(fake.graph_calls("GET", f"/groups/{GROUP}/members")) == 3  # 2 + 2 + 1
    assert await graph.holders(GROUP, OWNER) == set(many[:3])
    assert await graph.holds(GROUP, MEMBER, many[4])  # on the last page
    assert not await graph.holds(GROUP, MEMBER, ALICE)


async def test_paging_to_another_host_is_refused(graph, fake):
    fake.add_group(GROUP, members=[ALICE, BOB, CAROL])
    fake.next_link_base = "http://attacker.example/v1.0"
    error = await failure(graph.holders(GROUP, MEMBER))
    assert error.non_retryable and "attacker.example" in error.message
    assert not any("attacker" in e.path for e in fake.exchanges)


async def test_missing_group_is_permanent_for_every_operation(graph, fake):
    for operation in (
        graph.add(MISSING_GROUP, MEMBER, ALICE),
        graph.remove(MISSING_GROUP, MEMBER, ALICE),
        graph.remove(MISSING_GROUP, OWNER, ALICE),
        graph.holders(MISSING_GROUP, OWNER),
        graph.holds(MISSING_GROUP, MEMBER, ALICE),
    ):
        error = await failure(operation)
        assert error.type == "directory_group_not_found" and error.non_retryable, error
        assert MISSING_GROUP in error.message


async def test_missing_principal_on_add_is_permanent(graph, fake):
    error = await failure(graph.add(GROUP, MEMBER, GHOST))
    assert error.type == "directory_principal_not_found" and error.non_retryable
    assert fake.groups[GROUP]["members"] == []


async def test_forbidden_is_permanent(graph, fake):
    fake.forbidden.add(GROUP)
    for operation in (graph.add(GROUP, OWNER, ALICE), graph.remove(GROUP, MEMBER, ALICE), graph.holders(GROUP, MEMBER)):
        error = await failure(operation)
        assert error.type == "directory_forbidden" and error.non_retryable
        assert "Authorization_RequestDenied" in error.message
    assert fake.answered(403)[0].body["error"]["message"] == "Insufficient privileges to complete the operation."


async def test_throttling_waits_for_retry_after(graph, fake):
    await graph.holders(GROUP, MEMBER)  # sign in first: time only the throttled call
    fake.inject(429, 1, retry_after=1)
    started = time.monotonic()
    await graph.add(GROUP, MEMBER, ALICE)
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 3, elapsed
    posts = fake.graph_calls("POST")
    assert [e.status for e in posts] == [429, 204]
    assert posts[1].at - posts[0].at >= 0.95
    assert posts[0].body["error"]["code"] == "TooManyRequests"
    assert fake.groups[GROUP]["members"] == [ALICE]


async def test_503_with_retry_after_is_waited_too(graph, fake):
    await graph.holders(GROUP, MEMBER)
    fake.inject(503, 1, retry_after=1)
    started = time.monotonic()
    await graph.remove(GROUP, MEMBER, ALICE)
    assert time.monotonic() - started >= 0.95


async def test_throttling_beyond_the_waits_is_left_to_temporal(fake):
    async with directory_for(fake, max_throttle_waits=1) as graph:
        fake.inject(429, 2, retry_after=1)
        started = time.monotonic()
        error = await failure(graph.add(GROUP, MEMBER, ALICE))
        assert 0.95 <= time.monotonic() - started < 3
        assert error.type == "directory_throttled" and not error.non_retryable
        assert error.next_retry_delay == timedelta(seconds=1)


async def test_long_retry_after_is_not_slept_in_the_activity(graph, fake):
    fake.inject(429, 1, retry_after=120)  # longer than the cap (60 s) and the activity's 30 s
    started = time.monotonic()
    error = await failure(graph.add(GROUP, MEMBER, ALICE))
    assert time.monotonic() - started < 1
    assert error.type == "directory_throttled" and not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=120)


async def test_server_errors_and_dropped_connections_are_retryable(graph, fake):
    await graph.holders(GROUP, MEMBER)
    for kind in (500, 503, "drop"):
        fake.inject(kind, 1)
        error = await failure(graph.add(GROUP, MEMBER, ALICE))
        assert error.type == "directory_unavailable" and not error.non_retryable, (kind, error)
        assert kind != 503 or "serviceNotAvailable" in error.message
    assert fake.answered(None)  # the connection was dropped, not answered
    await graph.add(GROUP, MEMBER, ALICE)  # the retry Temporal would make
    assert fake.groups[GROUP]["members"] == [ALICE]


async def test_token_endpoint_failure_is_retryable(graph, fake):
    fake.inject(503, 1, token_endpoint=True)
    error = await failure(graph.add(GROUP, MEMBER, ALICE))
    assert error.type == "directory_unavailable" and not error.non_retryable
    await graph.add(GROUP, MEMBER, ALICE)


async def test_token_is_cached_and_renewed_once_when_graph_rejects_it(graph, fake):
    await graph.add(GROUP, MEMBER, ALICE)
    await graph.holders(GROUP, MEMBER)
    await asyncio.gather(*(graph.holds(GROUP, MEMBER, ALICE) for _ in range(5)))
    await graph.remove(GROUP, MEMBER, ALICE)
    assert fake.token_requests == 1
    fake.expire_tokens()
    await graph.add(GROUP, OWNER, BOB)
    assert fake.token_requests == 2
    rejected = fake.answered(401)
    assert len(rejected) == 1 and rejected[0].body["error"]["code"] == "InvalidAuthenticationToken"
    assert rejected[0].body["error"]["message"] == EXPIRED
    assert fake.groups[GROUP]["owners"] == [BOB]
    await graph.holders(GROUP, OWNER)
    assert fake.token_requests == 2


async def test_token_is_renewed_before_it_expires():
    with GraphFake(token_lifetime=2) as fake:  # renewed at half its life, 1 s
        fake.add_group(GROUP)
        async with directory_for(fake) as graph:
            await graph.holders(GROUP, MEMBER)
            await asyncio.sleep(1.1)
            await graph.holders(GROUP, MEMBER)
            assert fake.token_requests == 2 and not fake.answered(401)


async def test_token_rejected_twice_is_a_retryable_auth_failure(graph, fake):
    fake.inject(401, 2)
    error = await failure(graph.holders(GROUP, MEMBER))
    assert error.type == "directory_auth_failed" and not error.non_retryable
    assert fake.token_requests == 2  # renewed once, not in a loop


async def test_wrong_secret_is_an_auth_failure_without_the_secret(fake):
    async with GraphDirectory(
        tenant_id=fake.tenant_id,
        client_id=fake.client_id,
        client_secret="not-the-secret-xyz",
        authority=fake.authority,
        base_url=fake.base_url,
    ) as graph:
        error = await failure(graph.add(GROUP, MEMBER, ALICE))
    assert error.type == "directory_auth_failed" and "invalid_client" in error.message
    assert "not-the-secret-xyz" not in str(error)
    assert fake.answered(401)[0].body["error_codes"] == [7000215]


def test_from_settings(fake, monkeypatch):
    for name, value in {
        "PIM_GRAPH_TENANT_ID": fake.tenant_id,
        "PIM_GRAPH_CLIENT_ID": fake.client_id,
        "PIM_GRAPH_CLIENT_SECRET": fake.client_secret,
        "PIM_GRAPH_AUTHORITY": fake.authority,
        "PIM_GRAPH_BASE_URL": fake.base_url,
    }.items():
        monkeypatch.setenv(name, value)
    settings = PimSettings()
    assert fake.client_secret not in repr(settings) and fake.client_secret not in str(settings.model_dump())
    graph = GraphDirectory.from_settings(settings)
    assert graph._base == fake.base_url and fake.client_secret not in repr(graph)
    asyncio.run(graph.aclose())
    monkeypatch.setenv("PIM_DIRECTORY", "msgraph")
    built = build_directory(PimSettings(), store=None)
    assert isinstance(built, GraphDirectory)
    asyncio.run(built.aclose())
    monkeypatch.delenv("PIM_GRAPH_CLIENT_SECRET")
    with pytest.raises(ValueError, match="PIM_GRAPH_CLIENT_SECRET"):
        GraphDirectory.from_settings(PimSettings())
    defaults = PimSettings.model_fields
    assert defaults["graph_base_url"].default == "https://graph.microsoft.com/v1.0"
    assert defaults["graph_authority"].default == "https://login.microsoftonline.com"


async def test_secret_and_tokens_never_in_logs_or_errors(fake, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    events = structlog.testing.LogCapture()
    monkeypatch.setattr(msgraph, "log", structlog.wrap_logger(structlog.PrintLogger(io.StringIO()), processors=[events]))
    errors: list[BaseException] = []
    async with directory_for(fake, max_throttle_waits=1) as graph:
        await graph.add(GROUP, MEMBER, ALICE)
        await graph.add(GROUP, MEMBER, ALICE)
        fake.expire_tokens()
        await graph.remove(GROUP, MEMBER, BOB)
        fake.forbidden.add(OTHER_GROUP)
        for operation in (
            graph.add(OTHER_GROUP, MEMBER, ALICE),
            graph.add(MISSING_GROUP, MEMBER, ALICE),
            graph.add(GROUP, MEMBER, GHOST),
        ):
            errors.append(await failure(operation))
        fake.inject(401, 2)
        errors.append(await failure(graph.holders(GROUP, MEMBER)))
        fake.inject(429, 2, retry_after=0)
        fake.inject("drop", 1)
        errors.append(await failure(graph.holders(GROUP, MEMBER)))
        errors.append(await failure(graph.holders(GROUP, MEMBER)))
    async with GraphDirectory(
        tenant_id=fake.tenant_id,
        client_id=fake.client_id,
        client_secret=fake.client_secret + "x",
        authority=fake.authority,
        base_url=fake.base_url,
    ) as wrong:
        errors.append(await failure(wrong.holders(GROUP, MEMBER)))
    assert len(fake.issued) >= 3 and len(errors) == 7
    assert {"graph_token_acquired", "graph_token_rejected", "graph_added", "graph_throttled"} <= {
        e["event"] for e in events.entries
    }

    texts = [repr(e) for e in events.entries] + [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    for error in errors:
        while error is not None:
            texts += [str(error), repr(error), repr(getattr(error, "details", ()))]
            error = error.__cause__ or error.__context__
    everything = "\n".join(texts)
    assert fake.client_secret not in everything
    for token in fake.issued:
        assert token not in everything
        assert token.split(".", 1)[1] not in everything
