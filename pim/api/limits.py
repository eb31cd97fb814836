"""Rate limits per principal: requests, approval decisions, failed MFA codes.

A sliding window per (kind, key) in this process's memory: each API instance counts
its own callers (docs/api.md, "Limits"). Behind a load balancer with N instances a
caller gets at most N times the limit; the TOTP lockout in the store (5 wrong
codes) holds across instances whatever this allows."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from pim.api.errors import TOO_MANY, GraphError

MAX_KEYS = 100_000  # past this many tracked keys, idle ones are forgotten first


@dataclass(frozen=True)
class Limit:
    kind: str
    count: int
    window: float  # seconds


@dataclass
class RateLimiter:
    clock: Callable[[], float] = time.monotonic
    _hits: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def check(self, limit: Limit, key: str) -> None:
        """Count one hit; raises 429 when `key` has had `limit.count` in the window already."""
        now = self.clock()
        hits = self._recent(limit, key, now)
        if len(hits) >= limit.count:
            retry = max(1, math.ceil(hits[0] + limit.window - now))
            raise GraphError(
                429,
                TOO_MANY,
                f"too many {limit.kind} for {key}: {limit.count} per {int(limit.window)} s; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        hits.append(now)

    def exceeded(self, limit: Limit, key: str) -> bool:
        """Whether `key` is at its limit, without counting a hit (failed MFA is counted when it fails)."""
        return len(self._recent(limit, key, self.clock())) >= limit.count

    def record(self, limit: Limit, key: str) -> None:
        self._recent(limit, key, self.clock()).append(self.clock())

    def _recent(self, limit: Limit, key: str, now: float) -> deque[float]:
        hits = self._hits.get((limit.kind, key))
        if hits is None:
            if len(self._hits) >= MAX_KEYS:
                self._forget_idle(now)
            hits = self._hits[(limit.kind, key)] = deque()
        while hits and hits[0] <= now - limit.window:
            hits.popleft()
        return hits

    def _forget_idle(self, now: float) -> None:
        for found, hits in list(self._hits.items()):
            if not hits or hits[-1] <= now - 900:
                del self._hits[found]
