"""Store statements per activation, by activity: what `python -m bench.throughput`
asks of the store for each request, counted with SQLAlchemy's cursor events.

    python -m bench.profile_statements [--n 20]

N activations (no approval, TOTP, justification) are started one after the
other and waited to `active`, then deactivated by an administrator and waited
to their end. Every statement the store runs meanwhile is counted under the
activity that ran it (`activity.info()`, local activities included), or under
"outside activities" (the notification dispatcher, this script's own reads). A
write transaction is one `Store.transact` (the SQLite writer thread commits
those that queue together at once, with one BEGIN IMMEDIATE: pim/store/sessions.py; those
are counted outside activities).
"""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import event
from sqlalchemy.engine import Engine
from temporalio import activity

from bench.common import ADMIN, arg, bench_env, count_history, main, wait_state

OUTSIDE = "outside activities"


def _kind(statement: str) -> str:
    """`SELECT groups`, `INSERT audit_log`, `BEGIN IMMEDIATE`..."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = None
    if verb == "SELECT":
        found = re.search(r"\bFROM\s+(\w+)", statement, re.I)
        table = found.group(1) if found else None
    elif verb in ("INSERT", "REPLACE"):
        found = re.search(r"\bINTO\s+(\w+)", statement, re.I)
        table = found.group(1) if found else None
    elif verb == "UPDATE":
        table = words[1] if len(words) > 1 else None
    elif verb == "DELETE":
        found = re.search(r"\bFROM\s+(\w+)", statement, re.I)
        table = found.group(1) if found else None
    elif verb == "BEGIN":
        table = " ".join(words[1:2])
    return f"{verb} {table}" if table else verb


_RUNNING_FOR = threading.local()  # in the store's reader and writer threads: whose work runs


def _where() -> str:
    label = getattr(_RUNNING_FOR, "label", None)
    if label is not None:
        return label
    if activity.in_activity():
        info = activity.info()
        return info.activity_type + (" (local)" if info.is_local else "")
    return OUTSIDE


def _label_thread_work(count_transaction) -> None:
    from pim.store import sessions

    def labelled(work):
        label = _where()

        def run(session):
            _RUNNING_FOR.label = label
            try:
                value = work(session)
                session.flush()  # here rather than at the commit: its statements are counted for this work
                return value
            finally:
                _RUNNING_FOR.label = None

        return run

    transact, read = sessions.Sessions.transact, sessions.Sessions.read

    async def labelled_transact(self, work):
        count_transaction(_where())
        return await transact(self, labelled(work))

    async def labelled_read(self, work):
        return await read(self, labelled(work))

    sessions.Sessions.transact = labelled_transact  # type: ignore[method-assign]
    sessions.Sessions.read = labelled_read  # type: ignore[method-assign]


async def run() -> None:
    n = arg("n", 20)
    async with bench_env(n + 1) as bench:
        statements: dict[str, Counter] = defaultdict(Counter)
        commits: Counter = Counter()
        counting = False

        def on_statement(_conn, _cursor, statement, _params, _context, _many) -> None:
            if counting:
                statements[_where()][_kind(statement)] += 1

        # Every engine: the async one, and the reader and writer threads' (pim/store/sessions.py),
        # whose work is labelled with the activity that asked for it.
        event.listen(Engine, "before_cursor_execute", on_statement)
        _label_thread_work(lambda label: commits.update([label]) if counting else None)
        # Warm-up: one activation not counted.
        users = bench.take_users(n + 1)
        rid = await bench.pim.start(bench.request(users[0], duration=timedelta(minutes=30)))
        await wait_state(bench.pim, rid, {"active"})
        await bench.pim.deactivate(rid, ADMIN, "warm-up")
        await bench.pim.result(rid)
        counting = True
        to_active: dict[str, Counter] = {}
        ids = []
        for user in users[1:]:
            rid = await bench.pim.start(bench.request(user, duration=timedelta(minutes=30)))
            await wait_state(bench.pim, rid, {"active"}, interval=0.05)
            ids.append(rid)
        to_active = {k: Counter(v) for k, v in statements.items()}
        commits_to_active = Counter(commits)
        for rid in ids:
            await bench.pim.deactivate(rid, ADMIN, "benchmark: statements counted")
        for rid in ids:
            await bench.pim.result(rid)
        counting = False
        history = await count_history(bench.client, ids[0])

    def report(title: str, table: dict[str, Counter], txns: Counter) -> None:
        print(f"\n## {title} (per activation, mean of {n})\n")
        print("| where | statements | write transactions | by kind |")
        print("|---|---|---|---|")
        total = 0
        for where, kinds in sorted(table.items(), key=lambda kv: -sum(kv[1].values())):
            count = sum(kinds.values())
            total += count
            detail = ", ".join(f"{k} {v / n:g}" for k, v in kinds.most_common())
            print(f"| {where} | {count / n:g} | {txns[where] / n:g} | {detail} |")
        print(f"| total | {total / n:g} | {sum(txns.values()) / n:g} | |")

    report("request to active", to_active, commits_to_active)
    report("request to ended (deactivated)", statements, commits)
    print(f"\nhistory events of one of them (deactivated): {history['events']} {history['by_type']}")


if __name__ == "__main__":
    main(run)
