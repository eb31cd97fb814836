"""Scale: --n concurrently active activations (default 10,000) on one dev
server and one worker. Measures the time to start them all (request to
granted, started at the pace admission keeps), the worker's and the dev
server's RSS while they all sleep (VmRSS from /proc), and the revocation lag
when they expire (each from its own `expires_at`; they expire in the order
they were granted, at the rate they were started).

The duration is the policy floor (PT5M) or, when starting takes longer, long
enough that all are active together before the first expires.

    python -m bench.scale [--n 10000] [--duration SECONDS] [--concurrency 50]
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bench.common import GROUP, arg, bench_env, gather_limited, main, percentiles, rss_mb, save, table, wait_state
from bench.goals import figure, on_time_seconds
from bench.revocation_lag import MembershipWatch


async def start_until_active(bench, user: str, duration: int) -> str:
    rid = await bench.pim.start(bench.request(user, duration=timedelta(seconds=duration)))
    await wait_state(bench.pim, rid, {"active"}, timeout=600, interval=0.2)
    return rid


async def run() -> None:
    n = arg("n", 10_000)
    # Started at about 5 per second here while each is also watched until active:
    # leave room to start them all before the first expires.
    duration = arg("duration", max(300, int(n / 4) + 300))
    concurrency = arg("concurrency", 50)
    async with bench_env(n) as bench:
        server = bench.server_pid()
        watch = MembershipWatch(bench.store)
        watcher = asyncio.create_task(watch.run())
        rss_before = {"worker_mb": rss_mb(), "server_mb": rss_mb(server)}
        users = bench.take_users(n)
        began = time.time()
        ids = await gather_limited((start_until_active(bench, u, duration) for u in users), concurrency)
        start_seconds = time.time() - began
        print(f"{n} active after {start_seconds:.1f} s ({n / start_seconds:.1f}/s)", flush=True)
        await asyncio.sleep(10)
        rss_active = {"worker_mb": rss_mb(), "server_mb": rss_mb(server)}
        print(f"RSS while all {n} sleep: {rss_active}", flush=True)
        save(
            f"scale_{n}_partial",
            {
                "n": n,
                "duration_seconds": duration,
                "start_seconds": round(start_seconds, 1),
                "per_second": round(n / start_seconds, 2),
                "rss_before": rss_before,
                "rss_all_active": rss_active,
                "note": "written before the expiries",
            },
            parameters={"n": n, "duration_seconds": duration, "concurrency": concurrency},
        )
        statuses = await gather_limited((bench.pim.status(r) for r in ids), 20)
        expires = [s.expires_at.timestamp() for s in statuses]
        first_expiry = min(expires)
        if time.time() > first_expiry:
            print("WARNING: the first activations expired before the last one was active")
        keys = [(GROUP, u) for u in users]
        while time.time() < max(expires) + 5 or sum(k in watch.vanished for k in keys) < n:
            await asyncio.sleep(1)
            if time.time() > max(expires) + 600:
                print("WARNING: some memberships were not revoked 10 minutes after their expiry")
                break
        rss_after = {"worker_mb": rss_mb(), "server_mb": rss_mb(server)}
        watch.stop = True
        await watcher
        lags = [watch.vanished[k] - e for k, e in zip(keys, expires) if k in watch.vanished]
        stats = percentiles(lags)
        grace = on_time_seconds()
        on_time = sum(lag <= grace for lag in lags)
        print(
            table(
                [
                    (
                        n,
                        round(start_seconds, 1),
                        rss_active["worker_mb"],
                        rss_active["server_mb"],
                        stats.get("p50"),
                        stats.get("p99"),
                        stats.get("max"),
                        f"{on_time}/{n}",
                    )
                ],
                (
                    "active together",
                    "start s",
                    "worker RSS MB",
                    "server RSS MB",
                    "lag p50 s",
                    "lag p99 s",
                    "lag max s",
                    "on time",
                ),
            )
        )
        figures = [
            figure(
                f"{n:,} active on one worker: benchmark process RSS",
                "scale_memory",
                rss_active["worker_mb"],
                None,
                "MB",
                condition=on_time == n,
                revoked=len(lags),
                revoked_on_time=on_time,
                on_time_seconds=grace,
            ),
            figure(f"{n:,} active: revocation lag p99 as they expire", None, stats.get("p99"), None, "s"),
        ]
        save(
            f"scale_{n}",
            {
                "start_seconds": round(start_seconds, 1),
                "per_second": round(n / start_seconds, 2),
                "rss_before": rss_before,
                "rss_all_active": rss_active,
                "rss_after_expiry": rss_after,
                "lag_seconds": stats,
                "revoked": len(lags),
                "revoked_on_time": on_time,
                "method": f"requests started {concurrency} at a time, each waited to `active`; worker RSS is this process's VmRSS "
                "(worker, client, store, harness), server RSS the dev server child's VmRSS, 10 s after the last is active; "
                f"on time: the membership gone within {grace:g} s of its expires_at (the backstop's grace, "
                "PIM_BACKSTOP_GRACE)",
                "notes": bench.notes,
            },
            figures=figures,
            parameters={"n": n, "duration_seconds": duration, "concurrency": concurrency},
        )


if __name__ == "__main__":
    main(run)
