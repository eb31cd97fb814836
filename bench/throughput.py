"""Throughput against the floor: N activations (no approval, TOTP MFA,
justification) from request to granted, against N bare workflows (grant
activity, timer, revoke activity) reaching their grant, on the same dev server
in the same run. Also: history events of one uneventful activation
(request, active, ended by an administrator's deactivation) against the bare
floor's for the same life (started, granted, ended by its `end` signal).

    python -m bench.throughput [--n 300]
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import select

from bench.common import (
    ADMIN,
    BARE_GROUP,
    GROUP,
    arg,
    bench_env,
    count_history,
    gather_limited,
    main,
    save,
    store_kind,
    table,
    wait_bare_state,
    wait_state,
)
from bench.goals import figure
from pim.store.tables import MembershipRow

START_CONCURRENCY = 50


async def _poll_members(
    store, group_id: str, keys: set[str], seen: dict[str, float], interval: float = 0.025, timeout: float = 600
) -> None:
    """Record when each key's membership row first appears (one query per tick)."""
    deadline = time.monotonic() + timeout
    while len(seen) < len(keys):
        async with store.sessions() as session:
            rows = await session.scalars(select(MembershipRow.principal_id).where(MembershipRow.group_id == group_id))
            now = time.time()
            for key in rows:
                if key in keys and key not in seen:
                    seen[key] = now
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(keys) - len(seen)} of {len(keys)} never granted")
        await asyncio.sleep(interval)


async def run_batch(bench, n: int, kind: str) -> dict:
    seen: dict[str, float] = {}
    if kind == "product":
        users = bench.take_users(n)
        keys = set(users)
        poller = asyncio.create_task(_poll_members(bench.store, GROUP, keys, seen))
        began = time.time()
        ids = await gather_limited(
            (bench.pim.start(bench.request(u, duration=timedelta(minutes=30))) for u in users), START_CONCURRENCY
        )
    else:
        keys = {f"t-{kind}-{i:05d}" for i in range(n)}
        poller = asyncio.create_task(_poll_members(bench.store, BARE_GROUP, keys, seen))
        began = time.time()
        await gather_limited((bench.start_bare(k, 1800) for k in sorted(keys)), START_CONCURRENCY)
        ids = [f"bare/{k}" for k in sorted(keys)]
    started = time.time()
    await poller
    last = max(seen.values())
    elapsed = last - began
    result = {
        "kind": kind,
        "n": n,
        "seconds": round(elapsed, 3),
        "per_second": round(n / elapsed, 2),
        "start_calls_seconds": round(started - began, 3),
    }
    if kind == "product":
        # Every one of them also shows `active` in its status.
        states = await gather_limited((wait_state(bench.pim, rid, {"active"}) for rid in ids), 20)
        result["all_active"] = all(s == "active" for s, _ in states)
        result["request_ids"] = ids
    return result


async def run() -> None:
    n = arg("n", 300)
    async with bench_env(2 * n + 1) as bench:
        # Warm-up (imports, first workflow tasks, sqlite caches): not measured.
        await run_batch(bench, 10, "bare-warmup")
        bare = await run_batch(bench, n, "bare")
        product = await run_batch(bench, n, "product")
        # History of one uneventful activation: request, active, then ended by an
        # administrator's deactivation (expiry is measured by bench.revocation_lag);
        # the floor's for the same life: started, granted, ended by its `end` signal.
        probe = bench.take_users(1)[0]
        rid = await bench.pim.start(bench.request(probe, duration=timedelta(minutes=30)))
        await wait_state(bench.pim, rid, {"active"})
        await bench.pim.deactivate(rid, ADMIN, "benchmark: end the probe")
        final = await bench.pim.result(rid)
        history = await count_history(bench.client, rid)
        bare_probe = bench.bare_handle("history-probe")
        await bench.start_bare("history-probe", 1800)
        await wait_bare_state(bare_probe, {"active"})
        await bare_probe.signal("end")
        await bare_probe.result()
        bare_history = await count_history(bench.client, bare_probe.id)
        ratio = product["per_second"] / bare["per_second"]
        ids = product.pop("request_ids")
        sample = await count_history(bench.client, ids[0])  # a measured one, still active
        print(
            table(
                [
                    ("bare floor (grant, timer, revoke)", n, bare["seconds"], bare["per_second"], "1.00"),
                    ("GroupActivation (TOTP, justification)", n, product["seconds"], product["per_second"], f"{ratio:.2f}"),
                ],
                ("workflow", "n", "seconds to all granted", "per second", "ratio to floor"),
            )
        )
        print(
            f"history events of one uneventful activation ({final.state.value}): {history['events']}, the floor's "
            f"for the same life: {bare_history['events']} ({history['events'] / bare_history['events']:.2f}x); "
            f"of an active one: {sample['events']}"
        )
        store = store_kind()
        figures = [
            figure(
                f"throughput, {n} at once, request to granted ({store})",
                "throughput",
                product["per_second"],
                bare["per_second"],
                "/s",
            ),
            figure(
                "history events, uneventful activation (request, active, deactivated)",
                "history_events",
                history["events"],
                bare_history["events"],
                "events",
            ),
        ]
        save(
            "throughput",
            {
                "bare": bare,
                "product": product,
                "ratio_to_floor": round(ratio, 3),
                "history_events_uneventful": history["events"],
                "history_final_state": final.state.value,
                "history_by_type": history["by_type"],
                "bare_history_events": bare_history["events"],
                "bare_history_by_type": bare_history["by_type"],
                "history_events_while_active": sample["events"],
                "method": "all N started at once (50 start calls in flight); 'granted' is the first time the membership row "
                "is seen in the store (polled every 25 ms); elapsed from the first start call to the last grant. History: "
                "one activation deactivated by an administrator once active, one bare workflow ended by its `end` signal "
                "once granted; every event of each history counted",
                "notes": bench.notes,
            },
            figures=figures,
            parameters={"n": n, "start_concurrency": START_CONCURRENCY, "duration": "PT30M"},
        )


if __name__ == "__main__":
    main(run)
