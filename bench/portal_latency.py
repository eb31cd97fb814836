"""The portal's cost (issue 16): server time per page under --users concurrent
signed-in people, beside the API calls that page makes, in the same run.

Each person signs in through the portal's real sign-in: `/signin` sends them to the
issuer (authorization code with PKCE), they post the issuer's form with their TOTP
code, and `/auth/callback` sets the session cookie. The floor of a page is the API
calls its handler makes (pim/portal/*.py), sent over HTTP with the token that the
session holds, in the same pattern (together where the page gathers them):

| page | the handler's API calls |
|---|---|
| `/` My access | eligibilityScheduleInstances, assignmentScheduleInstances, assignmentScheduleRequests (mine, together) |
| `/requests` My requests | assignmentScheduleRequests (mine) |
| `/approvals` inbox | the approver's requests, then each one's `GET /api/requests/{id}`; beside it the approver's decisions and theirs |
| `/requests/{id}` | `GET /api/requests/{id}`, then `GET assignmentApprovals/{id}` (it has stages) |
| `/requests/{id}/live` | the same: the request page's live part, polled every 2 s while the request is open |

The tenant: every person has a deactivated, a canceled and an active request; the
approval group has pending requests (their approvers are the people signed in) and
one decided request per person. API, portal, issuer, worker and Temporal share this
process, as in `pim dev`.

    python -m bench.portal_latency [--users 8] [--n 200]
"""

from __future__ import annotations

import asyncio
import base64
import html
import os
import re
import socket
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import uvicorn
from pydantic import SecretStr

from bench.api_latency import APPROVALS, AUDIENCE, REQUESTS, serve
from bench.common import (
    ADMIN,
    APPROVAL_GROUP,
    GROUP,
    JUSTIFICATION,
    MEMBER,
    arg,
    bench_env,
    gather_limited,
    main,
    percentiles,
    save,
    table,
    wait_state,
)
from bench.goals import figure

GRAPH = "/v1.0/identityGovernance/privilegedAccess/group"
MINE = "filterByCurrentUser(on='principal')"
INBOX = f"{REQUESTS}/filterByCurrentUser(on='approver')"
DECISIONS = f"{APPROVALS}/filterByCurrentUser(on='approver')"
PENDING = 6  # requests waiting in every inbox
AT_ONCE = 8  # pim/portal/approvals.py reads this many statuses together
DECIDED_SHOWN = 20


@asynccontextmanager
async def portal_for(bench: Any, session_key: str) -> AsyncIterator[tuple[str, str]]:
    """The development issuer (with the portal's client) and the API with its portal; (base, issuer) URLs."""
    from pim.api.app import create_app
    from pim.api.services import ApiServices
    from pim.identity.issuer import IssuerSettings, create_issuer_app, pim_portal_client
    from pim.identity.oidc import OidcConfig, OidcVerifier
    from pim.runtime.settings import PimSettings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    issuer_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # as in bench.api_latency: the URL is needed before the issuer's app is made
    issuer_settings = IssuerSettings(
        issuer=issuer_url, audience=AUDIENCE, clients=(pim_portal_client(),), token_lifetime=timedelta(hours=2)
    )
    config = uvicorn.Config(
        create_issuer_app(bench.store, issuer_settings),
        host="127.0.0.1",
        port=int(issuer_url.rsplit(":", 1)[1]),
        log_level="warning",
    )
    issuer_server = uvicorn.Server(config)
    issuer_task = asyncio.create_task(issuer_server.serve())
    while not issuer_server.started:
        await asyncio.sleep(0.01)
    settings = PimSettings(
        oidc_issuer=issuer_url,
        oidc_audience=AUDIENCE,
        task_queue=bench.pim.task_queue,
        api_allowed_hosts="127.0.0.1",
        api_rate_requests=1_000_000,
        api_rate_decisions=1_000_000,
        portal=True,
        portal_session_key=SecretStr(session_key),
    )
    verifier = OidcVerifier(OidcConfig(issuer=issuer_url, audiences=(AUDIENCE,)))
    services = ApiServices(settings, bench.store, bench.pim, verifier)
    try:
        async with serve(create_app(services)) as base:
            yield base, issuer_url
    finally:
        issuer_server.should_exit = True
        await issuer_task


# --- the tenant's data ---------------------------------------------------------------------------


async def seed(bench: Any, people: list[str], requesters: list[str], deciders: list[str]) -> None:
    """Policies without MFA (the people's TOTP steps go to their sign-in), the people as
    the approval group's approvers; then each person's history, the pending requests and
    one decided request per person."""
    from pim.domain.policy import ActivationSettings, ApprovalStage, Policy

    def policy(approvers: list[str]) -> Policy:
        stages = [ApprovalStage(approvers=approvers, required=1)] if approvers else []
        return Policy(activation=ActivationSettings(approval=stages, require_justification=True, max_duration=timedelta(hours=8)))

    await bench.store.set_policy(GROUP, MEMBER, policy([]), by=ADMIN)
    await bench.store.set_policy(APPROVAL_GROUP, MEMBER, policy(people), by=ADMIN)
    await gather_limited([history(bench, person) for person in people], 8)
    await gather_limited([pending(bench, user) for user in requesters], 8)
    await gather_limited([decided(bench, user, person, i) for i, (user, person) in enumerate(zip(deciders, people))], 8)


def activation(user: str, group: str = GROUP, start_at: datetime | None = None) -> Any:
    from pim.domain.models import ActivationRequest

    return ActivationRequest(
        group_id=group,
        access=MEMBER,
        principal_id=user,
        duration=timedelta(minutes=30),
        justification=JUSTIFICATION,
        start_at=start_at,
    )


async def history(bench: Any, person: str) -> None:
    """Deactivated (by an administrator), canceled (it was scheduled), then active."""
    pim = bench.pim
    request_id = await pim.start(activation(person))
    await wait_state(pim, request_id, {"active"})
    await pim.deactivate(request_id, ADMIN, "benchmark history")  # the requester may not in the first 5 min
    await wait_state(pim, request_id, {"deactivated"})
    await pim.start(activation(person, start_at=datetime.now(UTC) + timedelta(hours=1)))
    await wait_state(pim, request_id, {"scheduled"})
    await pim.cancel(request_id, person, "benchmark history")
    await wait_state(pim, request_id, {"canceled"})
    await pim.start(activation(person))
    await wait_state(pim, request_id, {"active"})


async def pending(bench: Any, user: str) -> None:
    request_id = await bench.pim.start(activation(user, APPROVAL_GROUP))
    await wait_state(bench.pim, request_id, {"pending_approval"})


async def decided(bench: Any, user: str, approver: str, index: int) -> None:
    await pending(bench, user)
    decision = "approve" if index % 2 == 0 else "deny"
    await bench.pim.review(f"activation/{APPROVAL_GROUP}/member/{user}", approver, decision, "benchmark decision")


# --- signing in ---------------------------------------------------------------------------------


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} in the issuer's page"
    return html.unescape(found.group(1))


async def portal_sign_in(base: str, person: str, code: str) -> httpx.AsyncClient:
    """A browser's path, with httpx: `/signin` redirects to the issuer's form; the form,
    posted with the TOTP code, redirects to `/auth/callback`, which sets the session
    cookie and redirects to My access. The client keeps the cookie."""
    http = httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=True)
    form = await http.get("/signin", params={"next": "/"})
    assert form.status_code == 200 and 'name="authorization_request"' in form.text, form.text[:500]
    action = re.search(r'<form method="post" action="([^"]*)"', form.text)
    assert action, form.text[:500]
    fields = {"authorization_request": hidden(form.text, "authorization_request"), "user": person, "code": code}
    landed = await http.post(html.unescape(action.group(1)), data=fields)
    assert landed.status_code == 200 and landed.url.path == "/" and "Sign out" in landed.text, landed.text[:500]
    http.follow_redirects = False  # a page that redirects now (to the sign-in) is a failure
    return http


def session_token(http: httpx.AsyncClient, session_key: str) -> str:
    """The access token the portal keeps in the person's session (the floor's token)."""
    from pim.portal.session import COOKIE, SessionCodec

    session = SessionCodec.from_setting(session_key).open(http.cookies[COOKIE])
    assert session is not None
    return str(session["tokens"]["access"])


# --- the pages and their floors -----------------------------------------------------------------


class Floor:
    """A person's API calls, over HTTP with the session's token."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"})

    async def get(self, path: str) -> Any:
        response = await self.http.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text[:500]
        return response.json()

    async def access(self) -> None:  # pim/portal/access.py: gather()
        await asyncio.gather(
            self.get(f"{GRAPH}/eligibilityScheduleInstances/{MINE}"),
            self.get(f"{GRAPH}/assignmentScheduleInstances/{MINE}"),
            self.get(f"{REQUESTS}/{MINE}"),
        )

    async def requests(self) -> None:  # pim/portal/requests.py: my_requests()
        await self.get(f"{REQUESTS}/{MINE}")

    async def statuses(self, ids: list[str]) -> None:
        limit = asyncio.Semaphore(AT_ONCE)

        async def read(request_id: str) -> None:
            async with limit:
                await self.get(f"/api/requests/{request_id}")

        await asyncio.gather(*(read(i) for i in ids))

    async def approvals(self) -> None:  # pim/portal/approvals.py: inbox()
        async def waiting() -> None:
            await self.statuses([r["id"] for r in (await self.get(INBOX))["value"]])

        async def decided() -> None:
            found = (await self.get(DECISIONS))["value"]
            ids = [a["id"] for a in found if not any(s.get("assignedToMe") for s in a.get("stages") or [])]
            await self.statuses(ids[:DECIDED_SHOWN])

        await asyncio.gather(waiting(), decided())

    async def request(self, request_id: str) -> None:  # pim/portal/requests.py: request_page_context()
        if (await self.get(f"/api/requests/{request_id}")).get("stages"):
            await self.get(f"{APPROVALS}/{request_id}")


Timed = Callable[[int], Awaitable[None]]


async def phase(call: Timed, n: int, users: int, into: list[float]) -> None:
    """`n` calls, each person making theirs one after the other, all people at once."""

    async def person(index: int) -> None:
        for _ in range(index, n, users):
            began = time.perf_counter()
            await call(index)
            into.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(person(i) for i in range(users)))


def page_call(clients: list[httpx.AsyncClient], path: Callable[[int], str], live: bool) -> Timed:
    headers = {"HX-Request": "true"} if live else {}  # what htmx sends when it polls

    async def call(index: int) -> None:
        response = await clients[index].get(path(index), headers=headers)
        assert response.status_code == 200, (response.status_code, response.headers.get("location"), response.text[:300])

    return call


async def measure(page: Timed, floor: Timed, n: int, users: int) -> tuple[list[float], list[float]]:
    """One untimed call per person each, then interleaved halves: page, floor, page, floor."""
    await phase(page, users, users, [])
    await phase(floor, users, users, [])
    pages: list[float] = []
    floors: list[float] = []
    for share in (n // 2, n - n // 2):
        await phase(page, share, users, pages)
        await phase(floor, share, users, floors)
    return pages, floors


async def wait_listed(floor: Floor) -> None:
    """Until the lists show the seeded runs (Temporal's visibility lags a little)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        inbox = (await floor.get(INBOX))["value"]
        mine = (await floor.get(f"{REQUESTS}/{MINE}"))["value"]
        if sum(r["status"] == "PendingApproval" for r in inbox) >= PENDING and len(mine) >= 3:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the seeded requests are not listed after 60 s")


async def check_pages(http: httpx.AsyncClient, inbox: list[str], shown: str) -> None:
    """The pages show the tenant's data (a page that shows nothing would be cheap)."""
    approvals, mine, one = [(await http.get(path)).text for path in ("/approvals", "/requests", f"/requests/{shown}")]
    assert all(f"/requests/{i}" in approvals for i in inbox), "the inbox does not list the pending requests"
    assert all(word in mine for word in ("Deactivated", "Canceled", "Active")), "My requests lacks the history"
    assert ">Approve</button>" in one, "the request's page offers no decision"


# --- the run ------------------------------------------------------------------------------------


async def run() -> None:
    from pim.identity.totp import current_code

    users, n = arg("users", 8), arg("n", 200)
    session_key = "bench:" + base64.b64encode(os.urandom(32)).decode()
    async with bench_env(users, PENDING + users) as bench, portal_for(bench, session_key) as (base, _issuer):
        people = bench.take_users(users)
        began = time.monotonic()
        await seed(bench, people, bench.take_approval_users(PENDING), bench.take_approval_users(users))
        bench.notes["tenant_seconds"] = round(time.monotonic() - began, 1)

        sign_ins: list[float] = []
        clients: list[httpx.AsyncClient] = []
        for person in people:
            began = time.monotonic()
            clients.append(await portal_sign_in(base, person, current_code(bench.secrets[person])))
            sign_ins.append((time.monotonic() - began) * 1000)
        floors = [Floor(base, session_token(http, session_key)) for http in clients]
        await wait_listed(floors[0])
        inbox = [r["id"] for r in (await floors[0].get(INBOX))["value"] if r["status"] == "PendingApproval"]
        shown = {i: inbox[i % len(inbox)] for i in range(users)}  # each person opens a pending request
        await check_pages(clients[0], inbox, shown[0])

        def floor_of(method: str) -> Timed:
            async def call(index: int) -> None:
                await getattr(floors[index], method)()

            return call

        async def floor_request(index: int) -> None:
            await floors[index].request(shown[index])

        pages: list[tuple[str, Timed, Timed]] = [
            ("/", page_call(clients, lambda i: "/", False), floor_of("access")),
            ("/requests", page_call(clients, lambda i: "/requests", False), floor_of("requests")),
            ("/approvals", page_call(clients, lambda i: "/approvals", False), floor_of("approvals")),
            ("/requests/{id}", page_call(clients, lambda i: f"/requests/{shown[i]}", False), floor_request),
            ("/requests/{id}/live", page_call(clients, lambda i: f"/requests/{shown[i]}/live", True), floor_request),
        ]
        figures: dict[str, dict[str, Any]] = {}
        for name, page, floor in pages:
            page_ms, floor_ms = await measure(page, floor, n, users)
            figures[name] = {"page_ms": percentiles(page_ms), "floor_ms": percentiles(floor_ms)}
        for http in clients + [f.http for f in floors]:
            await http.aclose()

    report(figures, users, n, percentiles(sign_ins), bench.notes)


def _p99(figures: dict[str, Any]) -> tuple[float, float]:
    return figures["page_ms"]["p99"], figures["floor_ms"]["p99"]


def report(figures: dict[str, dict[str, Any]], users: int, n: int, sign_in: dict, notes: dict) -> None:
    rows = []
    for name, f in figures.items():
        page, floor = f["page_ms"], f["floor_ms"]
        f["ratio"] = {k: round(page[k] / floor[k], 2) for k in ("p50", "p99")}
        cells = (page["p50"], page["p99"], floor["p50"], floor["p99"])
        rows.append((name, page["n"], *(round(c, 1) for c in cells), f["ratio"]["p50"], f["ratio"]["p99"]))
    headers = ("page (ms)", "n", "p50", "p99", "API p50", "API p99", "x p50", "x p99")
    print(f"{users} signed-in people at once; the API floor: the page's own API calls over HTTP, same token")
    print(table(rows, headers))
    print(f"portal sign-in (code flow + PKCE, one person at a time): p50 {sign_in['p50']:.0f} ms")
    save(
        "portal_latency",
        {
            "pages": figures,
            "sign_in_ms": sign_in,
            "method": "wall clock of a GET of the page (HTML, 200) over loopback HTTP with the person's session "
            "cookie, against the API calls that page's handler makes, sent over loopback HTTP with the access "
            "token from the same session, gathered as the handler gathers them. The page's own calls go "
            "in-process (httpx's ASGI transport), so the floor carries one loopback round trip per call that the "
            "page does not. --users people each send their calls one after another, all at once; one untimed "
            "call each first, then interleaved halves. One process holds Temporal's dev server, the worker, the "
            "issuer, and the API with its portal.",
            "tenant": f"per person: a deactivated, a canceled and an active request on {GROUP}; {PENDING} requests "
            f"pending on {APPROVAL_GROUP} (approvers: the people), one decided per person; no MFA in the policies",
            "notes": notes,
        },
        figures=[figure(f"portal: GET {k}, p99 (floor: its API calls)", None, *_p99(f), "ms") for k, f in figures.items()],
        parameters={"users": users, "n": n},
    )


if __name__ == "__main__":
    main(run)
