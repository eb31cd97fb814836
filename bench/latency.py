"""Latency: request -> active without approval, and approve (the `review`
update) -> active with one approval stage, beside its floor in the same run: a
bare workflow that waits on an update (`approve`), then runs its grant activity
(bench/bare.py). p50/p95/p99 over --n requests each (default 500),
--concurrency in flight (default 4). The approve phases of the product and of
the floor run in interleaved halves, so that neither runs on a warmer or a
fuller system throughout.

    python -m bench.latency [--n 500] [--concurrency 4]
"""

from __future__ import annotations

import time
from datetime import timedelta

from bench.common import (
    APPROVAL_GROUP,
    APPROVER,
    arg,
    bench_env,
    gather_limited,
    main,
    percentiles,
    save,
    table,
    wait_bare_state,
    wait_state,
)
from bench.goals import figure


async def request_to_active(bench, user: str) -> float:
    t0 = time.time()
    rid = await bench.pim.start(bench.request(user, duration=timedelta(minutes=30)))
    _, seen = await wait_state(bench.pim, rid, {"active"})
    return seen - t0


async def approve_to_active(bench, user: str) -> tuple[float, float]:
    rid = await bench.pim.start(bench.request(user, group=APPROVAL_GROUP, duration=timedelta(minutes=30)))
    await wait_state(bench.pim, rid, {"pending_approval"})
    t0 = time.time()
    await bench.pim.review(rid, APPROVER, "approve", "approved: benchmark")
    answered = time.time()
    _, seen = await wait_state(bench.pim, rid, {"active"})
    return seen - t0, answered - t0


async def bare_approve_to_active(bench, key: str) -> tuple[float, float]:
    """The floor, measured as the product is: from the update call to the first query that shows active."""
    await bench.start_bare(key, 1800, approval=True)
    handle = bench.bare_handle(key)
    await wait_bare_state(handle, {"pending_approval"})
    t0 = time.time()
    await handle.execute_update("approve")
    answered = time.time()
    seen = await wait_bare_state(handle, {"active"})
    return seen - t0, answered - t0


async def run() -> None:
    n = arg("n", 500)
    concurrency = arg("concurrency", 4)
    async with bench_env(n + 10, n + 10) as bench:
        await gather_limited((request_to_active(bench, u) for u in bench.take_users(10)), concurrency)  # warm-up
        began = time.time()
        direct = await gather_limited((request_to_active(bench, u) for u in bench.take_users(n)), concurrency)
        direct_s = time.time() - began
        # Warm-up of both approve paths, then interleaved halves.
        await gather_limited((approve_to_active(bench, u) for u in bench.take_approval_users(10)), concurrency)
        await gather_limited((bare_approve_to_active(bench, f"approve-warm-{i}") for i in range(10)), concurrency)
        users, keys = bench.take_approval_users(n), [f"approve-{i:05d}" for i in range(n)]
        approved: list[tuple[float, float]] = []
        floor: list[tuple[float, float]] = []
        seconds = {"approve_to_active": 0.0, "floor_approve_to_active": 0.0}
        for half in (slice(0, n // 2), slice(n // 2, n)):
            began = time.time()
            approved += await gather_limited((approve_to_active(bench, u) for u in users[half]), concurrency)
            seconds["approve_to_active"] += time.time() - began
            began = time.time()
            floor += await gather_limited((bare_approve_to_active(bench, k) for k in keys[half]), concurrency)
            seconds["floor_approve_to_active"] += time.time() - began
        req = percentiles([d * 1000 for d in direct])
        appr = percentiles([a * 1000 for a, _ in approved])
        upd = percentiles([u * 1000 for _, u in approved])
        bare = percentiles([a * 1000 for a, _ in floor])
        bare_upd = percentiles([u * 1000 for _, u in floor])
        print(
            table(
                [
                    ("request -> active (no approval)", req["n"], req["p50"], req["p95"], req["p99"], req["max"]),
                    ("approve (review update) -> active", appr["n"], appr["p50"], appr["p95"], appr["p99"], appr["max"]),
                    ("  review update call returns", upd["n"], upd["p50"], upd["p95"], upd["p99"], upd["max"]),
                    ("floor: approve update -> granted", bare["n"], bare["p50"], bare["p95"], bare["p99"], bare["max"]),
                    (
                        "  approve update call returns",
                        bare_upd["n"],
                        bare_upd["p50"],
                        bare_upd["p95"],
                        bare_upd["p99"],
                        bare_upd["max"],
                    ),
                ],
                ("ms", "n", "p50", "p95", "p99", "max"),
            )
        )
        figures = [
            figure(
                f"approve -> active, p99 ({n}, {concurrency} in flight)", "approve_to_active_p99", appr["p99"], bare["p99"], "ms"
            ),
            figure(f"approve -> active, p50 ({n}, {concurrency} in flight)", None, appr["p50"], bare["p50"], "ms"),
        ]
        save(
            "latency",
            {
                "request_to_active_ms": req,
                "approve_to_active_ms": appr,
                "review_update_returns_ms": upd,
                "floor_approve_to_active_ms": bare,
                "floor_update_returns_ms": bare_upd,
                "phase_seconds": {"request_to_active": round(direct_s, 1), **{k: round(v, 1) for k, v in seconds.items()}},
                "method": "wall clock from the start call (resp. the `review` update call) to the first status query "
                "that shows `active` (polled every 10 ms); MFA sealed by the client, TOTP verified by admission. Floor: "
                "a bare workflow waiting on its `approve` update, then its grant activity; wall clock from the update "
                "call to the first `state` query (every 10 ms) that shows `active`. Product and floor in interleaved "
                "halves after 10 warm-up runs of each",
                "notes": bench.notes,
            },
            figures=figures,
            parameters={"n": n, "concurrency": concurrency, "poll_ms": 10},
        )


if __name__ == "__main__":
    main(run)
