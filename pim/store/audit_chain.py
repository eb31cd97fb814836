"""The audit log's hash chain: how a row's hash is made and how a log is verified.
Pure: no database, no clock (pim/store/audit.py writes the chain, `pim audit
verify` reads it).

Each row carries

    row_hash  = SHA-256, in hex, of  prev_hash + "\\n" + canonical JSON of the row's content
    prev_hash = the row_hash of the row before it (by id); GENESIS before the first row

The content is the keys id, at, action, actor, request_id, group_id, access,
principal_id, details and dedupe_key, as JSON with sorted keys, no spaces and
UTF-8 text; `at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.

Rows written before the chain existed have no hash. At the start of the log they
are "unchained": the chain passes through them all the same (each one's link is
computed as if it had been chained), so the first chained row's prev_hash
covers them. A row without a hash after a chained row is a break.

What the chain shows: a row changed after it was written, a row removed from
the middle, a row inserted with a hash that does not fit, a row dated before
the one before it (the store never dates a row earlier). What it cannot show:
the newest rows removed (unless their head was recorded elsewhere, see
`expected_head`), or a log rewritten from some row on with every hash
recomputed by someone who can write the table freely.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Iterable, Protocol

GENESIS = "0" * 64
CONTENT = ("id", "at", "action", "actor", "request_id", "group_id", "access", "principal_id", "details", "dedupe_key")


class AuditContent(Protocol):
    """What the chain covers: an AuditRow, or any record with the same fields."""

    @property
    def id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def action(self) -> str: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def group_id(self) -> str | None: ...
    @property
    def access(self) -> str | None: ...
    @property
    def principal_id(self) -> str | None: ...
    @property
    def details(self) -> dict: ...
    @property
    def dedupe_key(self) -> str | None: ...


class ChainedContent(AuditContent, Protocol):
    @property
    def prev_hash(self) -> str | None: ...
    @property
    def row_hash(self) -> str | None: ...


def instant(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime in an audit row")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalized_details(details: dict | None) -> dict:
    """Details as the store will read them back (a JSON round trip: tuples become
    lists, keys strings), so that the hash written is the hash verified."""
    return json.loads(json.dumps(details or {}))


def canonical_json(row: AuditContent) -> str:
    content: dict[str, Any] = {name: getattr(row, name) for name in CONTENT}
    content["at"] = instant(row.at)
    content["details"] = normalized_details(row.details)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, row: AuditContent) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical_json(row)}".encode()).hexdigest()


def link(prev: str, row: ChainedContent) -> str:
    """The hash the next row must name: the row's own, or for a row without one
    (written before the chain existed) the hash it would have had."""
    return row.row_hash or row_hash(prev, row)


def head_of(rows: Iterable[ChainedContent]) -> str:
    """The prev_hash of a row appended after `rows` (in id order)."""
    head = GENESIS
    for row in rows:
        head = link(head, row)
    return head


# --- verification -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first row that does not fit, and why (`code` is stable)."""

    row_id: int
    code: str
    message: str


@dataclass
class ChainReport:
    rows: int = 0
    unchained: int = 0  # rows before the chain started, without a hash of their own
    first_chained_id: int | None = None
    head_id: int | None = None
    head_hash: str | None = None
    problem: Break | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "unchained": self.unchained,
            "first_chained_id": self.first_chained_id,
            "head": None if self.head_id is None else {"id": self.head_id, "hash": self.head_hash},
            "problem": None
            if self.problem is None
            else {"row_id": self.problem.row_id, "code": self.problem.code, "message": self.problem.message},
        }


@dataclass
class ChainVerifier:
    """Feed it the rows in id order (`add`), then read `finish()`. Stops at the first
    break. `expected_head` (id, hash): a head recorded earlier, outside the store;
    that row must still be there with that hash (the newest rows cannot vanish)."""

    expected_head: tuple[int, str] | None = None
    report: ChainReport = field(default_factory=ChainReport, init=False)
    _link: str = field(default=GENESIS, init=False)  # what the next row must name as prev_hash
    _before: tuple[int, str] | None = field(default=None, init=False)  # the previous row's id, and the link before it
    _last_at: datetime | None = field(default=None, init=False)  # of the last chained row
    _head_seen: bool = field(default=False, init=False)

    def add(self, row: ChainedContent) -> Break | None:
        if self.report.problem is not None:
            return self.report.problem
        self.report.rows += 1
        problem = self._check(row)
        if problem is not None:
            self.report.problem = problem
            return problem
        self._before = (row.id, self._link)
        self._link = link(self._link, row)
        self.report.head_id, self.report.head_hash = row.id, self._link
        if row.row_hash is not None:
            self._last_at = row.at
        if self.expected_head is not None and row.id == self.expected_head[0]:
            self._head_seen = True
            if self._link != self.expected_head[1]:
                self.report.problem = Break(row.id, "head_mismatch", f"row {row.id} no longer carries the hash recorded for it")
        return self.report.problem

    def _check(self, row: ChainedContent) -> Break | None:
        if row.row_hash is None:
            if self.report.first_chained_id is not None:
                return Break(row.id, "unchained", f"row {row.id} has no hash after chained rows: it was written around the store")
            self.report.unchained += 1
            return None
        if self.report.first_chained_id is None:
            self.report.first_chained_id = row.id
        if row.prev_hash is None or row.row_hash != row_hash(row.prev_hash, row):
            return Break(
                row.id, "hash_mismatch", f"row {row.id} does not match its hash: changed after it was written, or forged"
            )
        if row.prev_hash != self._link:
            if self._before is not None and row.prev_hash == self._before[1]:
                inserted = self._before[0]
                return Break(
                    inserted, "inserted", f"row {inserted} was inserted: row {row.id} follows the row before it directly"
                )
            after = f"row {self._before[0]}" if self._before else "the start of the log"
            return Break(
                row.id,
                "missing_before",
                f"row {row.id} does not follow {after}: rows between them were removed, or earlier rows were changed",
            )
        if self._last_at is not None and row.at < self._last_at:
            return Break(row.id, "backdated", f"row {row.id} is dated {instant(row.at)}, before the row before it")
        return None

    def finish(self) -> ChainReport:
        if self.report.problem is None and self.expected_head is not None and not self._head_seen:
            row_id = self.expected_head[0]
            self.report.problem = Break(
                row_id, "head_missing", f"row {row_id}, recorded as a head, is not in the chain: the newest rows were removed"
            )
        return self.report


def verify_chain(rows: Iterable[ChainedContent], expected_head: tuple[int, str] | None = None) -> ChainReport:
    verifier = ChainVerifier(expected_head=expected_head)
    for row in rows:
        if verifier.add(row) is not None:
            break
    return verifier.finish()
