"""Where the time goes in `python -m bench.throughput`: the same two batches
(bare floor, then product), and for each one: CPU seconds of this process
(worker, dispatcher, store, client, harness) and of the dev server, CPU by
thread name, kernel time and context switches, the event loop's lag, the store
writer's queue (transactions, commits, busy time, waits), the wall time of each
`Store` call and of `admit_request` and `grant_access`, and the phases from
start to grant read from the histories.

    python -m bench.profile_throughput [--n 300] [--spy 1] [--native 1]

`--spy 1`: py-spy samples this process during the product batch only (raw,
collapsed stacks in bench/results/profile_throughput.txt): every thread, idle
included; with SPY_GIL=1 only the thread holding the GIL, with SPY_BUSY=1 only
running threads; `--native 1` adds C frames (SQLite's), pausing the process to
sample. `python -m bench.profile_throughput --summarise FILE` summarises a file.

Experiments, by environment: SWITCH_US (the GIL's switch interval, in
microseconds), READERS (the store's reader threads), SYNC_NORMAL=1 (SQLite
commits without fsync), PRAGMAS="mmap_size=268435456;cache_size=-65536" (more
SQLite pragmas on every connection).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.common import RESULTS, arg, bench_env, main, percentiles
from bench.throughput import run_batch

TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, by thread name (summed over threads of one name)."""
    import re

    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = re.sub(r"[-_ ]?\d+$", "", name)
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def system_seconds_and_switches() -> tuple[float, int]:
    """This process's CPU time in the kernel, and its context switches (all threads)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    switches = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
        except OSError:
            continue
    return int(fields[12]) / TICKS, switches


async def measured(bench, n: int, kind: str, spy: bool, native: bool = False) -> dict:
    server = bench.server_pid()
    me, there = cpu_seconds(None or os.getpid()), cpu_seconds(server)
    began = time.monotonic()
    spy_process = None
    out = RESULTS / "profile_throughput.txt"
    if spy:
        RESULTS.mkdir(parents=True, exist_ok=True)
        spy_process = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()), "--threads"]
            # SPY_GIL=1: only the thread holding the GIL (where Python's CPU goes), else every thread, idle included.
            + (["--gil"] if os.environ.get("SPY_GIL") else [] if os.environ.get("SPY_BUSY") else ["--idle"])
            + ["--rate", "100", "--format", "raw", "--output", str(out)]
            + (["--native"] if native else ["--nonblocking"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)
    threads_before = thread_cpu()
    kernel_before = system_seconds_and_switches()
    lags: list[float] = []
    lag_watch = asyncio.create_task(_loop_lag(lags))
    LOCK_TIMES.clear()
    RAN.clear()
    BATCHES.clear()
    CALLS.clear()
    result = await run_batch(bench, n, kind)
    locks = list(LOCK_TIMES)
    threads_after = thread_cpu()
    kernel_after = system_seconds_and_switches()
    by_thread = {k: round(v - threads_before.get(k, 0.0), 2) for k, v in threads_after.items()}
    lag_watch.cancel()
    calls = {name: (len(times), sum(times)) for name, times in CALLS.items()}
    if spy_process is not None:
        spy_process.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy_process.wait)
    wall = time.monotonic() - began
    ids = result.pop("request_ids", None)
    phases = await history_phases(bench, ids) if ids else None
    return {
        "write_transactions": len(locks),
        "write_lock_held_seconds": round(sum(RAN), 2),
        "write_batches": len(BATCHES),
        "write_waited_seconds": round(sum(w for w, _ in locks), 2),
        "phases": phases,
        "calls": calls,
        "loop_lag": percentiles(lags),
        "kernel_seconds": round(kernel_after[0] - kernel_before[0], 2),
        "context_switches": kernel_after[1] - kernel_before[1],
        "cpu_by_thread": dict(sorted(by_thread.items(), key=lambda kv: -kv[1])),
        **result,
        "wall": round(wall, 2),
        "cpu_bench_process": round(cpu_seconds(os.getpid()) - me, 2),
        "cpu_dev_server": round(cpu_seconds(server) - there, 2),
    }


PHASES = (
    ("start -> first task started", "WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_STARTED"),
    ("first task (admission, with the grant)", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"),
    ("task completed -> grant started", "WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_STARTED"),
    ("grant activity", "ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"),
)


async def _loop_lag(lags: list[float], every: float = 0.01) -> None:
    """How late the event loop runs a callback due every 10 ms."""
    while True:
        due = time.monotonic() + every
        await asyncio.sleep(every)
        lags.append(time.monotonic() - due)


async def history_phases(bench, ids: list[str]) -> dict:
    """Seconds spent in each phase from the start to the grant, from the histories."""
    from temporalio.api.enums.v1 import EventType

    spans: dict[str, list[float]] = {name: [] for name, _, _ in PHASES}
    for rid in ids:
        history = await bench.client.get_workflow_handle(rid).fetch_history()
        first: dict[str, float] = {}
        for event in history.events:
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            first.setdefault(kind, event.event_time.ToDatetime().timestamp())
        for name, begin, end in PHASES:
            if begin in first and end in first:
                spans[name].append(first[end] - first[begin])
    # A phase whose events this history does not have (an admission that grants) is left out.
    return {name: percentiles(values) for name, values in spans.items() if values}


LOCK_TIMES: list[tuple[float, float]] = []  # (waited, held) of each write transaction


def time_write_transactions() -> None:
    """Wrap the store's write transactions: how long each waited for its turn and ran."""
    from pim.store import sessions

    original_commit = sessions.SqliteWriter._commit

    def timed_commit(self, batch):  # in the writer thread: one transaction, from its start to its commit
        began = time.monotonic()
        try:
            return original_commit(self, batch)
        finally:
            RAN.append(time.monotonic() - began)
            BATCHES.append(len(batch))

    original = sessions.Sessions.transact

    async def transact(self, work):
        asked = time.monotonic()
        try:
            return await original(self, work)
        finally:
            LOCK_TIMES.append((time.monotonic() - asked, 0.0))

    sessions.SqliteWriter._commit = timed_commit  # type: ignore[method-assign]
    sessions.Sessions.transact = transact  # type: ignore[method-assign]


RAN: list[float] = []  # each database transaction of the writer thread
BATCHES: list[int] = []  # how many write transactions each one committed
CALLS: dict[str, list[float]] = {}


def time_calls() -> None:
    """Wall time of every call of the store's async methods and of the activities."""
    import functools
    import inspect

    from activities.access import AccessActivities
    from activities.admission import AdmissionActivities
    from pim.store import Store

    def wrap(owner, name):
        original = getattr(owner, name)

        @functools.wraps(original)
        async def timed(*args, **kwargs):
            began = time.monotonic()
            try:
                return await original(*args, **kwargs)
            finally:
                CALLS.setdefault(f"{owner.__name__}.{name}", []).append(time.monotonic() - began)

        setattr(owner, name, timed)

    for name, _member in inspect.getmembers(Store, inspect.iscoroutinefunction):
        if not name.startswith("_") and name not in ("transact", "close"):
            wrap(Store, name)
    wrap(AdmissionActivities, "admit_request")
    wrap(AccessActivities, "grant_access")


async def run() -> None:
    n = arg("n", 300)
    if os.environ.get("SWITCH_US"):  # experiment: the GIL's switch interval, in microseconds
        sys.setswitchinterval(int(os.environ["SWITCH_US"]) / 1e6)
    time_write_transactions()
    time_calls()
    if os.environ.get("READERS"):  # experiment: how many reader threads
        from pim.store import sessions

        sessions.SqliteReaders.THREADS = int(os.environ["READERS"])
    extra = [p for p in os.environ.get("PRAGMAS", "").split(";") if p]  # experiment: more SQLite pragmas
    if os.environ.get("SYNC_NORMAL"):  # experiment: commits without fsync (WAL, synchronous=NORMAL)
        extra.append("synchronous=NORMAL")
    if extra:
        from pim.store import sessions

        pragmas = sessions.sqlite_pragmas

        def more(connection, record):
            pragmas(connection, record)
            for pragma in extra:
                connection.execute(f"PRAGMA {pragma}")

        sessions.sqlite_pragmas = more
    spy = bool(arg("spy", 0))
    native = bool(arg("native", 0))  # C frames too (SQLite's), at the cost of pausing the process
    async with bench_env(2 * n + 1) as bench:
        await run_batch(bench, 10, "bare-warmup")
        bare = await measured(bench, n, "bare", False)
        product = await measured(bench, n, "product", spy, native)
    for row in (bare, product):
        print(
            f"{row['kind']:8} n={row['n']} {row['per_second']}/s; until all active {row['wall']} s; CPU seconds:"
            f" bench process {row['cpu_bench_process']} ({row['cpu_bench_process'] / row['n'] * 1000:.1f} ms each),"
            f" dev server {row['cpu_dev_server']} ({row['cpu_dev_server'] / row['n'] * 1000:.1f} ms each)"
        )
        print(
            f"  write transactions {row['write_transactions']} in {row['write_batches']} commits; the writer busy"
            f" {row['write_lock_held_seconds']} s; callers waited {row['write_waited_seconds']} s in all"
            f" (mean {row['write_waited_seconds'] / max(1, row['write_transactions']) * 1000:.1f} ms)"
        )
        print(
            "  CPU ms each, by thread: "
            + ", ".join(f"{k} {v / row['n'] * 1000:.1f}" for k, v in row["cpu_by_thread"].items() if v > 0)
        )
        print(
            f"  of which in the kernel {row['kernel_seconds']} s; context switches (threads seen at the end)"
            f" {row['context_switches'] / row['n']:.0f} each"
        )
        lag = row["loop_lag"]
        print(f"  event loop lag: p50 {lag['p50'] * 1000:.1f} ms, p95 {lag['p95'] * 1000:.1f} ms, max {lag['max'] * 1000:.1f} ms")
        for name, (count, total) in sorted(row["calls"].items(), key=lambda kv: -kv[1][1])[:25]:
            print(f"  {name:45} {count / row['n']:5.2f} calls each, mean {total / count * 1000:7.1f} ms")
        for name, spread in (row["phases"] or {}).items():
            print(f"  {name:34} p50 {spread['p50']:.3f} s, p95 {spread['p95']:.3f} s, mean {spread['mean']:.3f} s")


def summarise(path: str, top: int = 40) -> None:
    """Per thread kind: samples, and the busiest frames (inclusive) of the busy samples."""
    threads: Counter = Counter()
    idle: Counter = Counter()
    inclusive: Counter = Counter()
    leaf: Counter = Counter()
    total_busy = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1].strip() if frames else "?"
        threads[thread] += count
        top_frame = frames[-1]
        is_idle = any(word in top_frame for word in ("select (", "_worker (", "wait (", "poll (", "epoll", "acquire"))
        if is_idle:
            idle[thread] += count
            continue
        total_busy += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
        leaf[top_frame] += count
    print("thread samples (idle):")
    for thread, count in threads.most_common():
        print(f"  {count:7d} ({idle[thread]:7d} idle)  {thread}")
    print(f"\nbusy samples: {total_busy}; frames by inclusive share of them:")
    for frame, count in inclusive.most_common(top):
        print(f"  {count / total_busy:6.1%}  {frame}")
    print("\nleaf frames:")
    for frame, count in leaf.most_common(top):
        print(f"  {count / total_busy:6.1%}  {frame}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--summarise":
        summarise(sys.argv[2])
    else:
        main(run)
