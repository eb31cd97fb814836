"""Plots of the results in bench/results/: revocation lag (product vs bare, by
batch size), throughput against the floor, and latency with the approve floor.
Writes bench/results/bench.png. The goals drawn are bench/goals.py's.

    python -m bench.plot
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.goals import GOALS  # noqa: E402
from bench.report import RESULTS  # noqa: E402


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _params(run: dict) -> dict:
    return run.get("parameters", run)  # results from before issue 17 kept their parameters at the top


def _lag(ax, lag) -> None:
    labels, data = [], []
    for batch in lag["batches"]:
        labels.append(f"{'PIM' if batch['kind'] == 'product' else 'bare'}\n{batch['n']} together")
        data.append(batch["lags"])
    ax.boxplot(data, whis=(1, 99), showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    for i, batch in enumerate(lag["batches"], start=1):
        ax.annotate(
            f"p99 {batch['lag_seconds']['p99']:.2f} s",
            (i, batch["lag_seconds"]["p99"]),
            textcoords="offset points",
            xytext=(8, 0),
            fontsize=8,
        )
    p99 = {(b["kind"], b["n"]): b["lag_seconds"].get("p99") for b in lag["batches"]}
    sizes = sorted({n for _, n in p99})
    ratios = ", ".join(f"{n}: {p99[('product', n)] / p99[('bare', n)]:.2f}x" for n in sizes if p99.get(("bare", n)))
    goal = GOALS["revocation_lag_p99_100"].value
    ax.set_ylabel("seconds from expires_at to membership gone")
    ax.set_title(
        f"Revocation lag (PT{_params(lag)['duration_seconds'] // 60}M activations), whiskers p1-p99\n"
        f"p99 against the floor: {ratios or '-'} (goal <= {goal:g}x)"
    )


def _throughput(ax, runs) -> None:
    goal = GOALS["throughput"]
    labels, values, colors = [], [], []
    for store, run in runs:
        labels += [f"bare floor\n{store}", f"GroupActivation\n{store}"]
        values += [run["bare"]["per_second"], run["product"]["per_second"]]
        colors += ["tab:gray", "tab:blue"]
    bars = ax.bar(labels, values, color=colors)
    for i, (_store, run) in enumerate(runs):  # the goal, against each store's own floor
        floor = run["bare"]["per_second"]
        ax.hlines(goal.value * floor, 2 * i - 0.4, 2 * i + 1.4, color="tab:red", linestyle="--", linewidth=1,
                  label=f"goal: {goal.value:g} x floor" if i == 0 else None)  # fmt: skip
        ax.hlines(goal.stretch * floor, 2 * i - 0.4, 2 * i + 1.4, color="tab:red", linestyle=":", linewidth=1,
                  label=f"stretch: {goal.stretch:g} x floor" if i == 0 else None)  # fmt: skip
    for bar, value in zip(bars, values):
        ax.annotate(
            f"{value:.1f}/s", (bar.get_x() + bar.get_width() / 2, value), ha="center", textcoords="offset points", xytext=(0, 3)
        )
    ax.set_ylabel("workflows granted per second")
    ratios = ", ".join(f"{store} {run['ratio_to_floor']:.2f}" for store, run in runs)
    first = runs[0][1]
    events = f"{first['history_events_uneventful']} history events per uneventful activation"
    if "bare_history_events" in first:
        events += f" (floor {first['bare_history_events']})"
    ax.set_title(f"Throughput, n={_params(first)['n']}: ratio to the floor {ratios}\n{events}")
    ax.legend(fontsize=8)


def _latency(ax, lat) -> None:
    names = [("request_to_active_ms", "request -> active"), ("approve_to_active_ms", "approve -> active")]
    if "floor_approve_to_active_ms" in lat:
        names.append(("floor_approve_to_active_ms", "floor: approve update -> granted"))
    width = 0.8 / len(names)
    for index, (key, label) in enumerate(names):
        stats = lat[key]
        offset = (index - (len(names) - 1) / 2) * width
        ax.bar([i + offset for i in range(3)], [stats["p50"], stats["p95"], stats["p99"]], width, label=label)
    ax.set_xticks(range(3), ["p50", "p95", "p99"])
    if "floor_approve_to_active_ms" in lat:
        goal = GOALS["approve_to_active_p99"].value
        limit = goal * lat["floor_approve_to_active_ms"]["p99"]
        ax.hlines(limit, 1.6, 2.4, color="tab:red", linestyle="--", linewidth=1, label=f"goal: approve p99 <= {goal:g} x floor")
    ax.set_ylabel("ms")
    ax.set_title(f"Latency, n={_params(lat)['n']} each, {_params(lat)['concurrency']} in flight")
    ax.legend(fontsize=8)


def main() -> None:
    lag = _load("revocation_lag") or _load("revocation_lag_100_0_ballast2000")
    tput, lat = _load("throughput"), _load("latency")
    runs = [(store, run) for store, run in (("SQLite", tput), ("PostgreSQL", _load("throughput.postgresql"))) if run]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    for ax, data, draw, missing in (
        (axes[0], lag, _lag, "no revocation_lag result"),
        (axes[1], runs, _throughput, "no throughput result"),
        (axes[2], lat, _latency, "no latency result"),
    ):
        if data:
            draw(ax, data)
        else:
            ax.text(0.5, 0.5, missing, ha="center")
    fig.tight_layout()
    out = RESULTS / "bench.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
