"""The HTTP API's cost: the same activations through Graph's resources over HTTP and
through `PimClient` directly, in the same run, with --concurrency clients each.

- `POST assignmentScheduleRequests` (selfActivate, no approval) until its answer
  says Granted or Provisioned, against `PimClient.start` until the status is active;
- approval: `PATCH assignmentApprovals/{id}/stages/1` until the request is active,
  against the `review` update until active;
- requests per second of each path over the whole phase.

The API runs as `pim api` does (uvicorn, the development issuer as its identity
provider, every caller signed in through the device flow with their TOTP code),
in this process beside the worker: both paths share the same two cores.

    python -m bench.api_latency [--n 200] [--concurrency 8]
"""

from __future__ import annotations

import asyncio
import socket
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, AsyncIterator

import httpx
import uvicorn

from bench.common import (
    APPROVAL_GROUP,
    APPROVER,
    GROUP,
    JUSTIFICATION,
    arg,
    bench_env,
    main,
    percentiles,
    save,
    table,
    wait_state,
)
from bench.goals import figure

REQUESTS = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
APPROVALS = "/v1.0/identityGovernance/privilegedAccess/group/assignmentApprovals"
AUDIENCE = "pim-api"


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def api_for(bench: Any) -> AsyncIterator[tuple[str, str]]:
    """The development issuer and the API in front of the benchmark's worker; (api, issuer) URLs."""
    from pim.api.app import create_app
    from pim.api.services import ApiServices
    from pim.identity.issuer import IssuerSettings, create_issuer_app, pim_cli_client
    from pim.identity.oidc import OidcConfig, OidcVerifier
    from pim.runtime.settings import PimSettings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    issuer_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # the issuer's URL must be known before its app is made; the port is taken again just below
    issuer_app = create_issuer_app(bench.store, IssuerSettings(issuer=issuer_url, audience=AUDIENCE, clients=(pim_cli_client(),)))
    config = uvicorn.Config(issuer_app, host="127.0.0.1", port=int(issuer_url.rsplit(":", 1)[1]), log_level="warning")
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
        portal=False,  # the API alone
    )
    verifier = OidcVerifier(OidcConfig(issuer=issuer_url, audiences=(AUDIENCE,)))
    services = ApiServices(settings, bench.store, bench.pim, verifier)
    try:
        async with serve(create_app(services)) as api_url:
            yield api_url, issuer_url
    finally:
        issuer_server.should_exit = True
        await issuer_task


async def sign_in(http: httpx.AsyncClient, issuer: str, user: str, code: str) -> str:
    """The device flow, as `pim login --user U --code C` drives it: the device asks,
    the user signs in on the verification page with their TOTP code, the device polls."""
    device = (await http.post(f"{issuer}/device_authorization", data={"client_id": "pim-cli", "scope": "openid"})).json()
    form = {"user_code": device["user_code"], "user": user, "code": code, "decision": "approve"}
    approved = await http.post(f"{issuer}/device", data=form)
    assert approved.status_code == 200, approved.text
    grant = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device["device_code"],
        "client_id": "pim-cli",
    }
    return (await http.post(f"{issuer}/token", data=grant)).json()["access_token"]


def activation(user: str, group: str) -> dict:
    return {
        "action": "selfActivate",
        "accessId": "member",
        "principalId": user,
        "groupId": group,
        "justification": JUSTIFICATION,
        "scheduleInfo": {
            "startDateTime": datetime.now(UTC).isoformat(),
            "expiration": {"type": "afterDuration", "duration": "PT30M"},
        },
    }


async def post_to_granted(http: httpx.AsyncClient, api: str, token: str, user: str) -> float:
    started = time.time()
    response = await http.post(f"{api}{REQUESTS}", json=activation(user, GROUP), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201 and response.json()["status"] in ("Granted", "Provisioned"), response.text
    return time.time() - started


async def start_to_active(bench: Any, user: str) -> float:
    started = time.time()
    request_id = await bench.pim.start(bench.request(user, duration=timedelta(minutes=30)))
    _, seen = await wait_state(bench.pim, request_id, {"active"})
    return seen - started


async def patch_to_active(http: httpx.AsyncClient, api: str, bench: Any, tokens: dict[str, str], user: str) -> float:
    created = await http.post(
        f"{api}{REQUESTS}", json=activation(user, APPROVAL_GROUP), headers={"Authorization": f"Bearer {tokens[user]}"}
    )
    assert created.status_code == 201, created.text
    started = time.time()
    decided = await http.patch(
        f"{api}{APPROVALS}/{created.json()['id']}/stages/1",
        json={"reviewResult": "Approve", "justification": "approved: benchmark"},
        headers={"Authorization": f"Bearer {tokens[APPROVER]}"},
    )
    assert decided.status_code == 204, decided.text
    _, seen = await wait_state(bench.pim, f"activation/{APPROVAL_GROUP}/member/{user}", {"active"})
    return seen - started


async def review_to_active(bench: Any, user: str) -> float:
    request_id = await bench.pim.start(bench.request(user, group=APPROVAL_GROUP, duration=timedelta(minutes=30)))
    await wait_state(bench.pim, request_id, {"pending_approval"})
    started = time.time()
    await bench.pim.review(request_id, APPROVER, "approve", "approved: benchmark")
    _, seen = await wait_state(bench.pim, request_id, {"active"})
    return seen - started


async def timed(coros: list, concurrency: int) -> tuple[list[float], float]:
    """Each coroutine's own figure, `concurrency` in flight; and the phase's wall time."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(coro: Any) -> float:
        async with semaphore:
            return await coro

    began = time.monotonic()
    figures = await asyncio.gather(*(one(c) for c in coros))
    return list(figures), time.monotonic() - began


def _cells(figures: dict) -> tuple:
    return (figures["n"], *(round(figures[k], 1) for k in ("p50", "p95", "p99")))


async def run() -> None:
    from pim.identity.totp import current_code

    n, concurrency = arg("n", 200), arg("concurrency", 8)
    async with bench_env(2 * n, 2 * n) as bench, api_for(bench) as (api, issuer):
        http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency * 2))
        api_users, direct_users = bench.take_users(n), bench.take_users(n)
        api_approval_users, direct_approval_users = bench.take_approval_users(n), bench.take_approval_users(n)
        began = time.monotonic()
        tokens: dict[str, str] = {}
        approver_secret = await bench.store.mfa_secret(APPROVER)
        tokens[APPROVER] = await sign_in(http, issuer, APPROVER, current_code(approver_secret))
        for user in api_users + api_approval_users:
            tokens[user] = await sign_in(http, issuer, user, current_code(bench.secrets[user]))
        bench.notes["sign_in_seconds"] = round(time.monotonic() - began, 1)

        # Interleaved halves, so that neither path runs on a warmer or a fuller system throughout.
        half = n // 2
        api_post, api_post_s = await timed([post_to_granted(http, api, tokens[u], u) for u in api_users[:half]], concurrency)
        direct, direct_s = await timed([start_to_active(bench, u) for u in direct_users[:half]], concurrency)
        more_api, more_api_s = await timed([post_to_granted(http, api, tokens[u], u) for u in api_users[half:]], concurrency)
        more_direct, more_direct_s = await timed([start_to_active(bench, u) for u in direct_users[half:]], concurrency)
        api_post, direct = api_post + more_api, direct + more_direct
        api_rps, direct_rps = n / (api_post_s + more_api_s), n / (direct_s + more_direct_s)

        api_patch, _ = await timed([patch_to_active(http, api, bench, tokens, u) for u in api_approval_users], concurrency)
        direct_review, _ = await timed([review_to_active(bench, u) for u in direct_approval_users], concurrency)
        await http.aclose()

    ms = {
        name: percentiles([v * 1000 for v in values])
        for name, values in (
            ("api_post_to_granted", api_post),
            ("direct_start_to_active", direct),
            ("api_patch_to_active", api_patch),
            ("direct_review_to_active", direct_review),
        )
    }
    rows = [
        ("POST request -> Granted (API)", *_cells(ms["api_post_to_granted"])),
        ("  floor: PimClient.start -> active", *_cells(ms["direct_start_to_active"])),
        ("PATCH stage -> active (API)", *_cells(ms["api_patch_to_active"])),
        ("  floor: review update -> active", *_cells(ms["direct_review_to_active"])),
    ]
    print(table(rows, ("ms", "n", "p50", "p95", "p99")))
    share = {
        "post_p50_ms": round(ms["api_post_to_granted"]["p50"] - ms["direct_start_to_active"]["p50"], 1),
        "post_p99_ms": round(ms["api_post_to_granted"]["p99"] - ms["direct_start_to_active"]["p99"], 1),
        "patch_p99_ms": round(ms["api_patch_to_active"]["p99"] - ms["direct_review_to_active"]["p99"], 1),
    }
    print(f"requests per second, {concurrency} clients: API {api_rps:.1f}, PimClient {direct_rps:.1f}")
    print(
        f"the API's share: POST p50 +{share['post_p50_ms']} ms, p99 +{share['post_p99_ms']} ms; PATCH p99 +{share['patch_p99_ms']} ms"
    )
    post, direct = ms["api_post_to_granted"], ms["direct_start_to_active"]
    patch, review = ms["api_patch_to_active"], ms["direct_review_to_active"]
    figures = [
        figure("API: POST request -> Granted, p50 (floor: PimClient.start -> active)", None, post["p50"], direct["p50"], "ms"),
        figure("API: POST request -> Granted, p99 (floor: PimClient.start -> active)", None, post["p99"], direct["p99"], "ms"),
        figure("API: PATCH stage -> active, p99 (floor: review update -> active)", None, patch["p99"], review["p99"], "ms"),
    ]
    save(
        "api_latency",
        {
            **{f"{name}_ms": figures for name, figures in ms.items()},
            "requests_per_second": {"api": round(api_rps, 1), "pim_client": round(direct_rps, 1)},
            "api_share_ms": share,
            "method": "wall clock from sending the POST to its 201 answer (which comes once the request has left "
            "validating and activating), against PimClient.start to the first status query showing active (10 ms "
            "polls); PATCH sent to the first status query showing active, against the review update likewise. "
            "Interleaved halves; one process holds server, worker, issuer and API.",
            "notes": bench.notes,
        },
        figures=figures,
        parameters={"n": n, "concurrency": concurrency},
    )


if __name__ == "__main__":
    main(run)
