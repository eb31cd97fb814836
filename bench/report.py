"""Writing results: bench/results/<name>.json (figures in bench/goals.py's format, the
run's parameters, the machine, then each benchmark's details) and plain tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

# BENCH_RESULTS: another directory, for smoke runs that must not replace the results of a real one.
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).parent / "results")
REPORTED = Path(__file__).parent / "reported"


def machine() -> dict:
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip()
        except Exception:
            return None

    import temporalio

    cpu = None
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "nproc": run("nproc"),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "temporalio": temporalio.__version__,
        "temporal_cli": run(_temporal_binary(), "--version"),
    }


def _temporal_binary() -> str:
    from pim.runtime.temporal import find_binary

    return str(find_binary("temporal"))


def store_kind() -> str:
    return "postgresql" if os.environ.get("BENCH_POSTGRES_URL") else "sqlite"


def save(name: str, data: dict, *, figures: list[dict] | None = None, parameters: dict | None = None) -> Path:
    """bench/results/<name>.json: the figures (bench/goals.py's format), the run's parameters, then the details."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = store_kind()
    head = {"benchmark": name, "finished_at": datetime.now(UTC).isoformat(), "store": store}
    params = {"store": store, **(parameters or {})}
    data = {**head, "figures": figures or [], "parameters": params, "machine": machine(), **data}
    path = RESULTS / (f"{name}.json" if store == "sqlite" else f"{name}.{store}.json")
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def table(rows: list[tuple], headers: tuple) -> str:
    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
