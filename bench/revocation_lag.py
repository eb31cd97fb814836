"""Revocation lag: activations of the minimum duration (PT5M, the policy floor)
that expire together, 100 and then 1,000 of them, side by side with the bare
workflow (grant, timer, revoke) expiring the same way, in one run. The lag of
each is the time from its `expires_at` to the moment the store no longer holds
the membership (the memberships table, polled every 50 ms).

All four batches are started first as scheduled requests (`start_at`), so that
each batch is granted, and so expires, at one instant; the batches are spaced
so that they do not overlap: product-100 at T0, bare-100 at T0+30 s,
product-1000 at T0+60 s, bare-1000 at T0+120 s (T0 a little after every start
call has been admitted; --spacing 30). About 5 minutes of waiting plus 2 for
the spacing. When the 100 expire, 2,200 workflows are open.

--large 0 --ballast 2000 (make bench-quick): only the two batches of 100, with
2,000 other workflows open (1,000 activations and 1,000 bare workflows,
admitted and scheduled an hour later), so that the 100 expire among as many open
workflows as in the full run: about 7 minutes.

    python -m bench.revocation_lag [--small 100] [--large 1000] [--ballast 0] [--duration 300] [--spacing 30]
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bench.common import (
    BARE_GROUP,
    GROUP,
    arg,
    bench_env,
    count_history,
    gather_limited,
    main,
    percentiles,
    save,
    table,
    wait_state,
)
from bench.goals import figure
from bench.revocation_phases import phases
from pim.store.tables import MembershipRow

POLL = 0.05


class MembershipWatch:
    """When each (group, key) membership row appears and disappears."""

    def __init__(self, store) -> None:
        self.store = store
        self.appeared: dict[tuple[str, str], float] = {}
        self.vanished: dict[tuple[str, str], float] = {}
        self.stop = False

    async def run(self) -> None:
        present: set[tuple[str, str]] = set()
        while not self.stop:
            async with self.store.sessions() as session:
                rows = (
                    await session.execute(
                        select(MembershipRow.group_id, MembershipRow.principal_id).where(
                            MembershipRow.group_id.in_([GROUP, BARE_GROUP])
                        )
                    )
                ).all()
            now = time.time()
            current = {(g, p) for g, p in rows}
            for key in current - present:
                self.appeared.setdefault(key, now)
            for key in present - current:
                self.vanished.setdefault(key, now)
            present = current
            await asyncio.sleep(POLL)


async def start_and_admit(bench, user: str, duration: int, start_at: datetime) -> str:
    rid = await bench.pim.start(bench.request(user, duration=timedelta(seconds=duration), start_at=start_at))
    await wait_state(bench.pim, rid, {"scheduled", "activating", "active"}, interval=0.1)
    return rid


async def open_ballast(bench, n: int, duration: int) -> None:
    """n workflows open through the run and beyond it: half activations, half bare, scheduled an hour away."""
    later = datetime.now(UTC) + timedelta(hours=1)
    users = bench.take_users(n // 2)
    await gather_limited((start_and_admit(bench, u, duration, later) for u in users), 50)
    await gather_limited((bench.start_bare(f"ballast-{i:05d}", duration, later) for i in range(n - n // 2)), 50)


async def run() -> None:
    small, large, duration = arg("small", 100), arg("large", 1000), arg("duration", 300)
    ballast, spacing = arg("ballast", 0), arg("spacing", 30)
    opened = 2 * small + 2 * large + ballast
    async with bench_env(small + large + ballast // 2) as bench:
        watch = MembershipWatch(bench.store)
        watcher = asyncio.create_task(watch.run())
        began = time.time()
        if ballast:
            await open_ballast(bench, ballast, duration)
            print(f"{ballast} other workflows open after {time.time() - began:.1f} s", flush=True)
        lead = 20 + (small + large) / 10  # admission of every request must be done before T0
        t0 = datetime.now(UTC) + timedelta(seconds=lead)
        plan = [("product", small, t0), ("bare", small, t0 + timedelta(seconds=spacing))]
        if large:
            plan += [
                ("product", large, t0 + timedelta(seconds=2 * spacing)),
                ("bare", large, t0 + timedelta(seconds=4 * spacing)),
            ]
        batches = []
        for index, (kind, n, start_at) in enumerate(plan):
            if kind == "product":
                users = bench.take_users(n)
                # Started at the pace admission keeps (a TOTP code is only good for about a minute).
                ids = await gather_limited((start_and_admit(bench, u, duration, start_at) for u in users), 20)
                keys = [(GROUP, u) for u in users]
            else:
                names = [f"lag{index}-{n}-{i:05d}" for i in range(n)]
                await gather_limited((bench.start_bare(k, duration, start_at) for k in names), 50)
                ids = [f"bare/{k}" for k in names]
                keys = [(BARE_GROUP, k) for k in names]
            batches.append(dict(kind=kind, n=n, start_at=start_at, ids=ids, keys=keys))
        print(
            f"all {sum(b['n'] for b in batches)} started in {time.time() - began:.1f} s; T0 in "
            f"{(t0 - datetime.now(UTC)).total_seconds():.1f} s; expiries from "
            f"{(t0 + timedelta(seconds=duration)).isoformat()}",
            flush=True,
        )
        if datetime.now(UTC) > t0:
            print("WARNING: starting took longer than the lead; the first batch is not granted at one instant")

        # Once each batch is granted, read every expires_at.
        for batch in batches:
            while (batch["start_at"] - datetime.now(UTC)).total_seconds() > -5:
                await asyncio.sleep(1)
            while sum(k in watch.appeared for k in batch["keys"]) < batch["n"]:
                await asyncio.sleep(1)
            if batch["kind"] == "product":
                statuses = await gather_limited((bench.pim.status(r) for r in batch["ids"]), 20)
                batch["expires_at"] = [s.expires_at.timestamp() for s in statuses]
                batch["states"] = sorted({s.state.value for s in statuses})
            else:
                raw = await gather_limited(
                    (bench.client.get_workflow_handle(r).query("expires_at", result_type=str) for r in batch["ids"]), 20
                )
                batch["expires_at"] = [datetime.fromisoformat(x).timestamp() for x in raw]
            grants = [watch.appeared[k] for k in batch["keys"]]
            batch["grant_spread_s"] = round(max(grants) - min(grants), 3)
            batch["expires_spread_s"] = round(max(batch["expires_at"]) - min(batch["expires_at"]), 3)
            print(
                f"{batch['kind']} x{batch['n']}: granted within {batch['grant_spread_s']} s, expiring within "
                f"{batch['expires_spread_s']} s",
                flush=True,
            )

        last_expiry = max(max(b["expires_at"]) for b in batches)
        while time.time() < last_expiry + 5 or any(sum(k in watch.vanished for k in b["keys"]) < b["n"] for b in batches):
            await asyncio.sleep(1)
            if time.time() > last_expiry + 300:
                print("WARNING: some memberships were never revoked within 5 minutes of the last expiry")
                break
        watch.stop = True
        await watcher

        rows, out = [], []
        for batch in batches:
            lags = [watch.vanished[k] - e for k, e in zip(batch["keys"], batch["expires_at"]) if k in watch.vanished]
            stats = percentiles(lags)
            rows.append(
                (
                    batch["kind"],
                    batch["n"],
                    stats.get("p50"),
                    stats.get("p95"),
                    stats.get("p99"),
                    stats.get("max"),
                    batch["expires_spread_s"],
                )
            )
            out.append(
                {
                    "kind": batch["kind"],
                    "n": batch["n"],
                    "lag_seconds": stats,
                    "revoked": len(lags),
                    "grant_spread_s": batch["grant_spread_s"],
                    "expires_spread_s": batch["expires_spread_s"],
                    "lags": [round(x, 4) for x in lags],
                }
            )
        print(table(rows, ("workflow", "expiring together", "p50 s", "p95 s", "p99 s", "max s", "expiry spread s")))
        # Where the lag goes, for the first batch of each: read from the histories.
        for batch, entry in zip(batches[:2], out[:2]):
            gone = [watch.vanished.get(k) for k in batch["keys"]]
            entry["phases_seconds_after_expiry"] = await phases(bench.client, batch["ids"], batch["expires_at"], gone)
            print(f"{batch['kind']} x{batch['n']}, seconds after expires_at (p50 / p99):")
            for name, stats in entry["phases_seconds_after_expiry"].items():
                print(f"  {name:<20} {stats.get('p50')} / {stats.get('p99')}")
        # History of an activation that expired on its own, against a bare workflow of the same batch pair.
        product_small, bare_small = batches[0]["ids"][0], batches[1]["ids"][0]
        final = await bench.pim.result(product_small)
        history = await count_history(bench.client, product_small)
        bare_history = await count_history(bench.client, bare_small)
        print(
            f"history events of one activation that expired on its own ({final.state.value}): {history['events']}; "
            f"the floor's: {bare_history['events']}"
        )
        p99 = [b["lag_seconds"].get("p99") for b in out]  # product, bare (small); then product, bare (large)
        figures = [
            figure(
                f"revocation lag p99, {small} expiring together ({opened:,} open)",
                "revocation_lag_p99_100",
                p99[0],
                p99[1],
                "s",
            )
        ]
        if large:
            figures.append(
                figure(
                    f"revocation lag p99, {large} expiring together",
                    "revocation_lag_p99_1000",
                    p99[2],
                    p99[3],
                    "s",
                )
            )
        figures.append(
            figure(
                "history events, scheduled activation that expired on its own",
                None,
                history["events"],
                bare_history["events"],
                "events",
            )
        )
        default = "revocation_lag" if (small, large, ballast) == (100, 1000, 0) else f"revocation_lag_{small}_{large}"
        save(
            default + (f"_ballast{ballast}" if ballast else ""),
            {
                "batches": out,
                "history_events_expired": history["events"],
                "history_by_type": history["by_type"],
                "bare_history_events_expired": bare_history["events"],
                "bare_history_by_type": bare_history["by_type"],
                "method": f"scheduled (start_at) batches, one instant each; membership rows polled every {POLL * 1000:.0f} ms; "
                "lag = first poll without the row - expires_at (from the status query / the bare workflow's query)",
                "notes": bench.notes,
            },
            figures=figures,
            parameters={
                "small": small,
                "large": large,
                "ballast": ballast,
                "open_when_small_expire": opened,
                "duration_seconds": duration,
                "spacing_seconds": spacing,
                "poll_ms": int(POLL * 1000),
            },
        )


if __name__ == "__main__":
    main(run)
