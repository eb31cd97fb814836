"""The bare floor workflow: grant activity, durable timer, revoke activity. That is
the irreducible work any activation does; the product is measured against it.
With `approval`, it first waits on an update (`approve`): the floor of approve ->
active. An `end` signal ends it before its time, as a deactivation does: the floor
of an uneventful activation's history (request, active, ended).

A module of its own, as small as the product's workflow modules: the workflow
sandbox re-imports a workflow's module for every run it starts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from pim.domain.models import AccessType

BARE_GROUP = "grp-bare"
MEMBER = AccessType.member


class BareInput(BaseModel):
    key: str
    duration_seconds: float
    start_at: datetime | None = None  # like a scheduled activation: wait, then grant
    approval: bool = False  # wait on the `approve` update before the grant


class BareChange(BaseModel):
    key: str


# Times (wall clock) at which the bare grant and revoke activities finished, by key:
# the worker runs in this process, so the benchmark reads them directly.
BARE_GRANTED: dict[str, float] = {}
BARE_REVOKED: dict[str, float] = {}


@dataclass
class BareActivities:
    store: object

    @activity.defn(name="bare_grant")
    async def bare_grant(self, change: BareChange) -> None:
        await self.store.set_membership(BARE_GROUP, MEMBER, change.key, present=True)
        BARE_GRANTED[change.key] = time.time()

    @activity.defn(name="bare_revoke")
    async def bare_revoke(self, change: BareChange) -> None:
        await self.store.set_membership(BARE_GROUP, MEMBER, change.key, present=False)
        BARE_REVOKED[change.key] = time.time()


_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))


@workflow.defn(name="BareGrant")
class BareGrant:
    def __init__(self) -> None:
        self.expires_at: datetime | None = None
        self.state = "starting"
        self.approved = False
        self.ended = False

    @workflow.run
    async def run(self, data: BareInput) -> str:
        if data.start_at is not None and data.start_at > workflow.now():
            self.state = "scheduled"
            await workflow.sleep(data.start_at - workflow.now())
        if data.approval:
            self.state = "pending_approval"
            await workflow.wait_condition(lambda: self.approved)
        granted_at = workflow.now()
        self.expires_at = granted_at + timedelta(seconds=data.duration_seconds)
        await workflow.execute_activity(
            "bare_grant", BareChange(key=data.key), start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY
        )
        self.state = "active"
        remaining = self.expires_at - workflow.now()
        if remaining > timedelta(0) and not self.ended:
            try:  # one timer, as workflow.sleep would start; canceled by `end`
                await workflow.wait_condition(lambda: self.ended, timeout=remaining)
            except asyncio.TimeoutError:
                pass
        self.state = "revoking"
        await workflow.execute_activity(
            "bare_revoke", BareChange(key=data.key), start_to_close_timeout=timedelta(seconds=30), retry_policy=_RETRY
        )
        self.state = "ended" if self.ended else "expired"
        return self.expires_at.isoformat()

    @workflow.update(name="approve")
    def approve(self) -> None:
        self.approved = True

    @workflow.signal(name="end")
    def end(self) -> None:
        self.ended = True

    @workflow.query(name="state")
    def get_state(self) -> str:
        return self.state

    @workflow.query(name="expires_at")
    def get_expires_at(self) -> str | None:
        return self.expires_at.isoformat() if self.expires_at else None
