"""Plots of the results in bench/results/: revocation lag (product vs bare, by
batch size) and throughput against the floor. Writes bench/results/bench.png.

    python -m bench.plot
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import RESULTS  # noqa: E402


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    lag, tput, lat = _load("revocation_lag"), _load("throughput"), _load("latency")
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))

    ax = axes[0]
    if lag:
        labels, data = [], []
        for batch in lag["batches"]:
            labels.append(f"{'PIM' if batch['kind'] == 'product' else 'bare'}\n{batch['n']} together")
            data.append(batch["lags"])
        ax.boxplot(data, whis=(1, 99), showfliers=True)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=1, label="goal p99 < 1 s (100 together)")
        for i, batch in enumerate(lag["batches"], start=1):
            ax.annotate(
                f"p99 {batch['lag_seconds']['p99']:.2f} s",
                (i, batch["lag_seconds"]["p99"]),
                textcoords="offset points",
                xytext=(8, 0),
                fontsize=8,
            )
        ax.set_ylabel("seconds from expires_at to membership gone")
        ax.set_title(f"Revocation lag (PT{lag['duration_seconds'] // 60}M activations)\nwhiskers p1-p99")
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no revocation_lag result", ha="center")

    ax = axes[1]
    runs = [(store, run) for store, run in (("SQLite", tput), ("PostgreSQL", _load("throughput.postgresql"))) if run]
    if runs:
        labels, values, colors = [], [], []
        for store, run in runs:
            labels += [f"bare floor\n{store}", f"GroupActivation\n{store}"]
            values += [run["bare"]["per_second"], run["product"]["per_second"]]
            colors += ["tab:gray", "tab:blue"]
        bars = ax.bar(labels, values, color=colors)
        for i, (_store, run) in enumerate(runs):  # the goal, against each store's own floor
            ax.hlines(
                0.7 * run["bare"]["per_second"],
                2 * i - 0.4,
                2 * i + 1.4,
                color="tab:red",
                linestyle="--",
                linewidth=1,
                label="goal: 0.7 x floor" if i == 0 else None,
            )
        for bar, value in zip(bars, values):
            ax.annotate(
                f"{value:.1f}/s",
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                textcoords="offset points",
                xytext=(0, 3),
            )
        ax.set_ylabel("workflows granted per second")
        ratios = ", ".join(f"{store} {run['ratio_to_floor']:.2f}" for store, run in runs)
        ax.set_title(
            f"Throughput, n={runs[0][1]['n']}: ratio to the floor {ratios}\n"
            f"{runs[0][1]['history_events_uneventful']} history events per uneventful activation"
        )
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no throughput result", ha="center")

    ax = axes[2]
    if lat:
        names = [("request_to_active_ms", "request -> active"), ("approve_to_active_ms", "approve -> active")]
        x = range(3)
        width = 0.38
        for offset, (key, label) in zip((-width / 2, width / 2), names):
            stats = lat[key]
            ax.bar([i + offset for i in x], [stats["p50"], stats["p95"], stats["p99"]], width, label=label)
        ax.set_xticks(list(x), ["p50", "p95", "p99"])
        ax.axhline(500, color="tab:red", linestyle="--", linewidth=1, label="goal: approve p99 < 500 ms")
        ax.set_ylabel("ms")
        ax.set_title(f"Latency, n={lat['n']} each, {lat['concurrency']} in flight")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no latency result", ha="center")

    fig.tight_layout()
    out = RESULTS / "bench.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
