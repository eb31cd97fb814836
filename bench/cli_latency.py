"""Command-line latency: `pim status ID` against `temporal workflow query
--workflow-id ID --type status`, the same question to the same server, each a
new process as a person or a script runs it; also `pim status` on its full path
(a connection setting sends it there) and `pim --help`. Runs interleaved, --n of
each (default 30) after two warm-up runs; wall clock from spawn to exit.

    python -m bench.cli_latency [--n 30]

Goal (issue 17): `pim status` in the local mode within 5x the `temporal` CLI
(p50, same run): the ratio to a Go binary that loads nothing says what Python
and the product cost on top of the round trip. Issue 14's goal, under 0.3 s
(p50), is reported beside it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from bench.common import arg, bench_env, main, save, table, wait_state
from bench.goals import figure

GOAL_SECONDS = 0.3
PIM = str(Path(sys.executable).parent / "pim")


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))], 4)

    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p90": pct(90),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }


async def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to exit; the command must succeed. The worker runs in this
    process's event loop, so the command is awaited, never waited for in a block."""
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    elapsed = time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {err.decode()[-500:]}")
    return elapsed


async def run() -> None:
    from pim.runtime.temporal import find_binary

    n = arg("n", 30)
    async with bench_env(2) as bench:
        (user,) = bench.take_users(1)
        request_id = await bench.pim.start(bench.request(user))
        await wait_state(bench.pim, request_id, {"active"})
        target = bench.client.service_client.config.target_host
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "TEMPORAL_"))}
        env["PIM_TEMPORAL_ADDRESS"] = target
        commands = {
            "pim status (quick path)": ([PIM, "status", request_id], env),
            "pim status (full path)": ([PIM, "status", request_id], {**env, "PIM_TEMPORAL_TLS": "false"}),
            "pim --help": ([PIM, "--help"], env),
            "temporal workflow query": (
                [find_binary("temporal"), "workflow", "query", "--workflow-id", request_id, "--type", "status"]
                + ["--address", target],
                env,
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(n + 2):  # interleaved, so that any noise falls on all alike
            for name, (command, command_env) in commands.items():
                seconds = await timed(command, command_env)
                if round_ >= 2:
                    times[name].append(seconds)
        results = {name: summary(seconds) for name, seconds in times.items()}
        print(
            table(
                [(name, r["n"], r["p50"], r["p90"], r["min"], r["max"]) for name, r in results.items()],
                ("seconds", "n", "p50", "p90", "min", "max"),
            )
        )
        product, floor = results["pim status (quick path)"], results["temporal workflow query"]
        ratio = round(product["p50"] / floor["p50"], 2)
        met = product["p50"] < GOAL_SECONDS
        print(f"pim status / temporal workflow query (p50): {ratio}x")
        print(f"issue 14's goal: pim status p50 < {GOAL_SECONDS} s: {'met' if met else 'missed'}")
        figures = [
            figure(
                "`pim status` (local mode) against `temporal workflow query`, p50",
                "cli_status",
                product["p50"],
                floor["p50"],
                "s",
            )
        ]
        save(
            "cli_latency",
            {
                "product": {"command": "pim status ID", **product},
                "floor": {"command": "temporal workflow query --workflow-id ID --type status", **floor},
                "ratio": ratio,
                "issue14_goal": {"product_p50_seconds_under": GOAL_SECONDS, "met": met},
                "full_path": {"command": "pim status ID with PIM_TEMPORAL_TLS=false", **results["pim status (full path)"]},
                "help": {"command": "pim --help", **results["pim --help"]},
                "method": "each command a new process, spawned and awaited from the benchmark's event loop (its worker "
                "answers the queries), interleaved, two warm-up rounds dropped; wall clock from spawn to exit",
                "notes": bench.notes,
            },
            figures=figures,
            parameters={"n": n, "warm_up_rounds": 2},
        )


if __name__ == "__main__":
    main(run)
