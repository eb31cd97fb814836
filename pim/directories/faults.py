"""Injected directory faults, for tests only (setting PIM_DIRECTORY_FAULTS).

The plan is a comma-separated list of OPERATION:MODE:COUNT, with OPERATION
`add` (grant) or `remove` (revoke) and MODE one of:

- `fail`: raise before doing anything;
- `hang`: never answer (sleep far past the activity's timeout; cancellable);
- `lie`:  do the operation, then raise as if it had failed;
- `refuse`: raise a non-retryable temporalio ApplicationError, the way a real
  directory refuses for good (LDAP or Graph answering "forbidden"); its type is
  `directory_refused`, or TYPE when written `refuse=TYPE`, e.g.
  `remove:refuse=directory_group_not_found:1` for a group deleted meanwhile.

`fail`, `hang` and `lie` raise `InjectedFault`, which Temporal retries; what
comes of a refusal is the caller's to decide (a revocation retries it anyway,
and counts a group the directory no longer has as revoked: see
pim/directories/sources.py).

Each entry applies to the next COUNT calls of its operation, in the order
written: "remove:fail:2,remove:lie:1" fails the first two removals, performs
and misreports the third, and lets every later one through. Counters live in
the wrapper, so in memory: one worker process, one count. `holds` is never
faulted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio.exceptions import ApplicationError

from pim.directories.interface import Directory
from pim.domain.models import AccessType
from pim.runtime.logging import get_logger

SETTING = "PIM_DIRECTORY_FAULTS"
OPERATIONS = ("add", "remove")
MODES = ("fail", "hang", "lie", "refuse")
REFUSED = "directory_refused"  # the ApplicationError type of a bare `refuse`
ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HANG_SECONDS = 3600  # far past any activity's start_to_close timeout

log = get_logger("pim.directories.faults")


class InjectedFault(Exception):
    """What a faulty directory raises: the activity fails and is retried."""


@dataclass
class Step:
    mode: str  # as written: "fail", "hang", "lie", "refuse" or "refuse=TYPE"
    left: int  # calls still to fault


@dataclass
class FaultPlan:
    steps: dict[str, list[Step]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})

    @classmethod
    def parse(cls, text: str) -> "FaultPlan":
        plan = cls()
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ValueError(f"{SETTING}: empty fault plan {text!r}; expected e.g. 'remove:fail:3,add:hang:1'")
        for part in parts:
            fields = [f.strip() for f in part.split(":")]
            if len(fields) != 3:
                raise ValueError(f"{SETTING}: {part!r} is not OPERATION:MODE:COUNT")
            operation, mode, count = fields
            if operation not in OPERATIONS:
                raise ValueError(f"{SETTING}: {part!r}: operation {operation!r} is not one of {', '.join(OPERATIONS)}")
            kind, typed, error_type = mode.partition("=")
            if kind not in MODES:
                raise ValueError(f"{SETTING}: {part!r}: mode {mode!r} is not one of {', '.join(MODES)}")
            if typed and kind != "refuse":
                raise ValueError(f"{SETTING}: {part!r}: only `refuse` takes an error type (refuse=TYPE)")
            if typed and not ERROR_TYPE.fullmatch(error_type):
                raise ValueError(f"{SETTING}: {part!r}: error type {error_type!r} is not an identifier")
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"{SETTING}: {part!r}: count {count!r} is not a positive whole number")
            plan.steps[operation].append(Step(mode, int(count)))
        return plan

    def next_fault(self, operation: str) -> str | None:
        """The mode for this call of `operation` (counted), or None to let it through."""
        for step in self.steps[operation]:
            if step.left > 0:
                step.left -= 1
                return step.mode
        return None


class FaultyDirectory:
    """A Directory that misbehaves as its plan says, then behaves like `inner`."""

    def __init__(self, inner: Directory, plan: FaultPlan | str) -> None:
        self.inner = inner
        self.plan = FaultPlan.parse(plan) if isinstance(plan, str) else plan
        self.injected: list[tuple[str, str]] = []  # (operation, mode), for tests to inspect

    async def add(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await self._call("add", self.inner.add, group_id, access, principal_id)

    async def remove(self, group_id: str, access: AccessType, principal_id: str) -> None:
        await self._call("remove", self.inner.remove, group_id, access, principal_id)

    async def holds(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        return await self.inner.holds(group_id, access, principal_id)

    async def holders(self, group_id: str, access: AccessType) -> set[str]:
        return await self.inner.holders(group_id, access)

    async def _call(
        self,
        operation: str,
        do: Callable[[str, AccessType, str], Awaitable[None]],
        group_id: str,
        access: AccessType,
        principal_id: str,
    ) -> None:
        mode = self.plan.next_fault(operation)
        if mode is None:
            return await do(group_id, access, principal_id)
        self.injected.append((operation, mode))
        log.warning(
            "directory fault injected",
            operation=operation,
            mode=mode,
            group_id=group_id,
            access=AccessType(access).value,
            principal_id=principal_id,
        )
        kind, _, error_type = mode.partition("=")
        if kind == "refuse":
            error_type = error_type or REFUSED
            raise ApplicationError(
                f"directory {operation} refused ({error_type}, injected fault)", type=error_type, non_retryable=True
            )
        if mode == "hang":
            await asyncio.sleep(HANG_SECONDS)
        elif mode == "lie":
            await do(group_id, access, principal_id)
        raise InjectedFault(f"directory {operation} failed ({mode}, injected fault)")
