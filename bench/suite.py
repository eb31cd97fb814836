"""The benchmark suites of issue 17 and their summary.

    python -m bench.suite quick    # make bench-quick: throughput (SQLite), approve -> active with its
                                   # floor, 100 expiring together with 2,200 open; at most 10 minutes
    python -m bench.suite full     # make bench: the full set
    python -m bench.suite summary [NAME ...]   # the figures of bench/results/NAME.json (all by default)

Each benchmark runs in a process of its own (its own dev server, store and worker), one after
the other. The summary is a table of every figure with a goal: product, floor, ratio, goal, met.
A goal missed is printed as MISSED and does not fail the command; a benchmark that fails does.
BENCH_POSTGRES_URL (an admin URL) adds the PostgreSQL throughput run to the full set; SCALE_N
(default 10000) sets the scale run's size; BENCH_RESULTS, another directory for the results
(bench/report.py), e.g. for a smoke run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.report import RESULTS, table


@dataclass
class Step:
    module: str
    args: list[str]
    result: str  # bench/results/<result>.json
    env: dict[str, str] = field(default_factory=dict)


def quick() -> list[Step]:
    return [
        Step("bench.throughput", ["--n", "300"], "throughput"),
        # 300, not 500: the p99 is the 3rd slowest of 300; the floor is measured the same way beside it.
        Step("bench.latency", ["--n", "300", "--concurrency", "4"], "latency"),
        # The 100 together among 2,200 open, as in the full run, without the two batches of 1,000.
        Step(
            "bench.revocation_lag",
            ["--small", "100", "--large", "0", "--ballast", "2000", "--spacing", "20"],
            "revocation_lag_100_0_ballast2000",
        ),
    ]


def full() -> list[Step]:
    scale_n = os.environ.get("SCALE_N", "10000")
    steps = [Step("bench.throughput", ["--n", "300"], "throughput")]
    if os.environ.get("BENCH_POSTGRES_URL"):
        steps.append(
            Step(
                "bench.throughput",
                ["--n", "300"],
                "throughput.postgresql",
                {"BENCH_POSTGRES_URL": os.environ["BENCH_POSTGRES_URL"]},
            )
        )
    steps += [
        Step("bench.latency", ["--n", "500", "--concurrency", "4"], "latency"),
        Step("bench.revocation_lag", ["--small", "100", "--large", "1000"], "revocation_lag"),
        Step("bench.scale", ["--n", scale_n], f"scale_{scale_n}"),
        Step("bench.cli_latency", ["--n", "30"], "cli_latency"),
        Step("bench.api_latency", [], "api_latency"),
        Step("bench.portal_latency", [], "portal_latency"),
    ]
    return steps


def run(steps: list[Step], label: str, budget_minutes: float | None = None) -> int:
    began = time.time()
    failed: list[str] = []
    if label == "full" and not os.environ.get("BENCH_POSTGRES_URL"):
        print("BENCH_POSTGRES_URL is not set: no PostgreSQL throughput run", flush=True)
    for step in steps:
        command = [sys.executable, "-m", step.module, *step.args]
        shown = [f"{k}=..." for k in step.env] + ["python", "-m", step.module, *step.args]
        print(f"\n=== {' '.join(shown)}", flush=True)
        # Only the steps that name it run on PostgreSQL.
        env = {k: v for k, v in os.environ.items() if k != "BENCH_POSTGRES_URL"} | step.env
        step_began = time.time()
        code = subprocess.run(command, env=env).returncode
        print(f"=== {step.module}: exit {code} after {time.time() - step_began:.0f} s", flush=True)
        if code != 0:
            failed.append(f"{step.module} {' '.join(step.args)} (exit {code})")
    elapsed = time.time() - began
    missed = summary([s.result for s in steps], since=began)
    print(f"\n{label}: {elapsed / 60:.1f} minutes")
    if budget_minutes is not None and elapsed > budget_minutes * 60:
        print(f"OVER BUDGET: {label} is to take at most {budget_minutes:g} minutes")
    if failed:
        print("FAILED: " + "; ".join(failed))
    return 1 if failed or missed is None else 0


def _cell(value, unit: str) -> str:
    if value is None:
        return "-"
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}{'' if unit.startswith('/') else ' '}{unit}"


def summary(names: list[str], since: float | None = None) -> int | None:
    """Print every figure of the named results; the number of goals missed (None: a result is missing)."""
    rows, figures, missing = [], [], []
    for name in names:
        path = RESULTS / f"{name}.json"
        data = json.loads(path.read_text()) if path.exists() else None
        finished = datetime.fromisoformat(data["finished_at"]).timestamp() if data else 0.0
        if data is None or (since is not None and finished < since):
            missing.append(name)
            rows.append((f"{name}: no result from this run", "", "", "", "", "NOT RUN"))
            continue
        for f in data.get("figures", []):
            goal = f.get("goal")
            met = "-" if f["met"] is None else ("met" if f["met"] else "MISSED")
            if f.get("stretch_met"):
                met += " (stretch too)"
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}"
            rows.append(
                (
                    f["figure"],
                    _cell(f["product"], f["unit"]),
                    _cell(f["floor"], f["unit"]),
                    ratio,
                    goal["text"] if goal else "-",
                    met,
                )
            )
            figures.append({**f, "result": name})
    print()
    print(table(rows, ("figure", "product", "floor", "ratio", "goal", "met")))
    judged = [f for f in figures if f["met"] is not None]
    missed = [f for f in judged if not f["met"]]
    print(f"\ngoals: {len(judged) - len(missed)} of {len(judged)} met")
    for f in missed:
        on = f["goal"]["on"]
        got = f"ratio {f['ratio']}" if on == "ratio" else f"{f['product']} {f['unit']}"
        if f.get("condition_met") is False:
            got += f"; not {f['goal']['also']}"
        print(f"MISSED: {f['figure']}: goal {f['goal']['text']}, got {got}")
    if missing:
        print(f"NOT RUN: {', '.join(missing)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"finished_at": datetime.now(UTC).isoformat(), "results": names, "missing": missing, "figures": figures}
    (RESULTS / "summary.json").write_text(json.dumps(out, indent=2) + "\n")
    return None if missing else len(missed)


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "quick"
    if what == "quick":
        sys.exit(run(quick(), "bench-quick", budget_minutes=10))
    if what == "full":
        sys.exit(run(full(), "full"))
    if what == "summary":
        names = sys.argv[2:] or sorted(p.stem for p in RESULTS.glob("*.json") if p.stem != "summary")
        summary(names)
        return
    sys.exit(f"usage: python -m bench.suite quick|full|summary [NAME ...]: not {what!r}")


if __name__ == "__main__":
    main()
