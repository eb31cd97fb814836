"""Waiting in tests for what comes true a moment later: a request's state, a
notification delivered, a worker ready. One helper, `eventually`, on the real
clock or on the time-skipping server's; `settled` is the wait for a request's
status that most tests need."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from pim.domain.models import State
from pim.domain.status import ActivationStatus

T = TypeVar("T")

# The states a request passes through on its own, without waiting for anyone.
TRANSIENT = (State.validating, State.activating, State.revoking)


def _seconds(span: float | timedelta) -> float:
    return span.total_seconds() if isinstance(span, timedelta) else float(span)


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    until: Callable[[T], object] = bool,
    timeout: float | timedelta = 15.0,
    interval: float | timedelta = 0.05,
    env: Any = None,
    ignoring: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> T:
    """Call `check` (sync or async) until `until(value)` holds, by default until it
    returns something truthy, and return that value.

    Between calls it waits `interval`; after `timeout` it fails the test, saying
    `what` it waited for and the last value seen. The time is the real one, or, given
    `env` (a time-skipping WorkflowEnvironment), the server's: `env.sleep(interval)`
    moves it on between calls, and the wait gives up once it has moved `timeout`.
    Both are seconds or timedeltas. An exception of a type in `ignoring` counts as
    "not yet" (and is the last value seen); any other ends the wait at once, and so
    does an AssertionError always: `check` raises one to give up early."""
    limit, step = _seconds(timeout), _seconds(interval)
    started, moved = time.monotonic(), 0.0
    last: object = None
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except AssertionError:
            raise
        except ignoring as error:
            last = error
        else:
            if until(value):
                return value
            last = value
        spent = moved if env is not None else time.monotonic() - started
        if spent >= limit:
            clock = " of the server's time" if env is not None else ""
            cause = last if isinstance(last, BaseException) else None
            raise AssertionError(f"timed out after {limit:g} s{clock} waiting for {what}; last seen: {last!r}") from cause
        if env is not None:
            await env.sleep(timedelta(seconds=step))
            moved += step
        else:
            await asyncio.sleep(step)


async def settled(
    pim,
    request_id: str,
    state: State | None = None,
    *,
    timeout: float | timedelta = 15.0,
    interval: float | timedelta = 0.05,
    env: Any = None,
) -> ActivationStatus:
    """The request's status once it shows `state` or, with no state given, once it
    is out of validating / activating / revoking. Fails at once when the request
    ends in another state, or when its status query goes unanswered for 10 s (its
    workflow task is failing); `timeout`, `interval` and `env` as for `eventually`."""

    async def status() -> ActivationStatus:
        try:
            current = await asyncio.wait_for(pim.status(request_id), timeout=10)
        except TimeoutError:
            raise AssertionError(f"{request_id} does not answer the status query: its workflow task is failing") from None
        if state is not None and current.state != state and current.state.terminal:
            raise AssertionError(
                f"{request_id} ended {current.state.value} ({current.end_reason}), expected {state.value}: "
                f"{[v.code for v in current.violations]}"
            )
        return current

    return await eventually(
        status,
        what=f"{request_id} to be {state.value}" if state is not None else f"{request_id} to settle",
        until=(lambda s: s.state == state) if state is not None else (lambda s: s.state not in TRANSIENT),
        timeout=timeout,
        interval=interval,
        env=env,
    )
