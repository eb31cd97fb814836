"""Bad input, tried for real (issue 5, item 5): hostile request and signal payloads
sent with the `temporal` CLI to a worker on the dev server each end in a clear
refusal, never a stuck workflow task (SPEC section 3, last rule); and property
tests over the duration arithmetic.

Size limits: ids match `ID_PATTERN` (1 to 128 plain characters), texts hold at
most `MAX_TEXT` (2,000) characters, durations lie in (0, `MAX_DURATION` = P3660D],
instants between 2000 and 2200. Temporal itself accepts payloads up to 2 MB (the
dev server's blob size limit), so a 1 MB justification reaches the workflow and
is refused there, by our limit, naming the field."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from pim.domain.actors import Action
from pim.domain.durations import parse_duration
from pim.domain.models import MAX_DURATION, AccessType, ActivationRequest, Deactivate, Decision, Extend, State
from pim.domain.status import ActivationStatus
from pim.identity.totp import current_code
from tests.conftest import running_worker, signed
from tests.polling import settled

TEMPORAL = str(Path(sys.executable).parent / "temporal")
GOOD = {"group_id": "grp-dev", "access": "member", "principal_id": "alice", "justification": "INC-42 database failover"}
PROMPT = 15.0  # seconds: every hostile request must have ended by then


async def temporal(address: str, *args: str) -> str:
    """The `temporal` CLI in a subprocess, without blocking the worker's loop."""
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        *args,
        env={**os.environ, "TEMPORAL_ADDRESS": address},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, f"temporal {' '.join(a[:80] for a in args)}: {err.decode()[:500]}"
    return out.decode()


async def task_failures(address: str, workflow_id: str) -> list[dict]:
    """WORKFLOW_TASK_FAILED events of the history, read with `temporal workflow show`."""
    history = json.loads(await temporal(address, "workflow", "show", "-w", workflow_id, "-o", "json"))
    types = [event["eventType"] for event in history["events"]]
    assert "EVENT_TYPE_WORKFLOW_TASK_COMPLETED" in types, types  # the names are what we think they are
    return [event for event in history["events"] if event["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_FAILED"]


def hostile(**fields) -> dict:
    return {**GOOD, **fields}


# name -> (payload, the field the violation must name)
PAYLOADS = {
    "wrong-type": (hostile(group_id=5), "group_id"),
    "missing-fields": ({"group_id": "grp-dev"}, "principal_id"),
    "unknown-access": (hostile(access="administrator"), "access"),
    "negative-duration": (hostile(duration="-PT1H"), "duration"),
    "huge-duration": (hostile(duration="P99999999D"), "duration"),
    "past-timedelta": (hostile(duration="P9999999999D"), "duration"),
    "absurd-start": (hostile(start_at="9999-12-31T23:59:59Z"), "start_at"),
    "one-megabyte": (hostile(justification="x" * 1_000_000), "justification"),
    "rtl-override": (hostile(principal_id="al\u202eeci"), "principal_id"),
    "zero-width": (hostile(principal_id="ali\u200bce"), "principal_id"),
    "cyrillic-a": (hostile(principal_id="\u0430lice"), "principal_id"),
    "newline": (hostile(principal_id="alice\n"), "principal_id"),
    "newline-group": (hostile(group_id="grp-dev\nadmin"), "group_id"),
    "extra-field": (hostile(is_admin=True), "is_admin"),
    "mfa-wrong-type": (hostile(mfa={"code": 123456}), "mfa.code"),
    "array": (["grp-dev", "member", "alice"], "payload"),
    "null": (None, "payload"),
}


async def test_hostile_requests_end_rejected_promptly_naming_the_field(dev_env, demo, tmp_path):
    address = dev_env.client.service_client.config.target_host
    run = uuid.uuid4().hex[:8]
    async with running_worker(dev_env, demo) as pim:

        async def start(name: str, payload) -> tuple[str, float]:
            workflow_id = f"hostile/{run}/{name}"
            text = json.dumps(payload, ensure_ascii=False)
            args = [
                "workflow",
                "start",
                "--type",
                "GroupActivation",
                "--task-queue",
                pim.task_queue,
                "--workflow-id",
                workflow_id,
            ]
            if len(text) > 100_000:  # one argv string holds at most 128 kB on Linux
                (tmp_path / f"{name}.json").write_text(text)
                args += ["--input-file", str(tmp_path / f"{name}.json")]
            else:
                args += ["--input", text]
            began = time.monotonic()
            await temporal(address, *args)
            return workflow_id, began

        started = await asyncio.gather(*(start(name, payload) for name, (payload, _) in PAYLOADS.items()))

        async def ended(workflow_id: str, began: float) -> tuple[ActivationStatus, float]:
            handle = dev_env.client.get_workflow_handle(workflow_id, result_type=ActivationStatus)
            result = await asyncio.wait_for(handle.result(), timeout=PROMPT)
            return result, time.monotonic() - began

        results = await asyncio.gather(*(ended(*s) for s in started))
        for (name, (_, field)), (_workflow_id, _), (final, took) in zip(PAYLOADS.items(), started, results):
            assert took < PROMPT, f"{name}: took {took:.1f} s"
            assert final.state == State.rejected, f"{name}: {final.state}"
            assert final.end_reason == "malformed request"
            assert final.violations and all(v.code == "invalid_field" for v in final.violations)
            assert any(v.message.startswith(f"{field}:") for v in final.violations), (name, final.violations)
            assert final.granted_at is None

        # Each is closed on the server (describe), and no workflow task ever failed (show).
        for workflow_id, _ in started:
            described = json.loads(await temporal(address, "workflow", "describe", "-w", workflow_id, "-o", "json"))
            assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
            assert await task_failures(address, workflow_id) == [], workflow_id

        # The megabyte did travel through Temporal (it fits its 2 MB limit); our own limit refused it.
        megabyte = dict(zip(PAYLOADS, started))["one-megabyte"][0]
        async for event in dev_env.client.get_workflow_handle(megabyte).fetch_history_events():
            if event.HasField("workflow_execution_started_event_attributes"):
                assert len(event.workflow_execution_started_event_attributes.input.payloads[0].data) > 1_000_000
                break
        else:
            raise AssertionError("no start event")
        final = await pim.result(megabyte)
        assert final.justification is None and "at most 2000 characters" in final.violations[0].message
        assert not await demo.has_membership("grp-dev", AccessType.member, "alice")


async def test_hostile_signals_are_refused_or_ignored_and_the_workflow_keeps_working(dev_env, demo):
    address = dev_env.client.service_client.config.target_host
    async with running_worker(dev_env, demo) as pim:
        request = {
            "group_id": "grp-ops",
            "access": "member",
            "principal_id": "alice",
            "duration": "PT2H",
            "justification": "INC-42 database failover",
            "mfa": {"method": "totp", "code": current_code(await demo.mfa_secret("alice"))},
        }
        # The canonical id (another one is refused), and a proof: what `pim sign` prints.
        workflow_id = "activation/grp-ops/member/alice"
        request = signed(ActivationRequest.model_validate(request), "alice", Action.request, workflow_id)
        await temporal(
            address,
            "workflow",
            "start",
            "--type",
            "GroupActivation",
            "--task-queue",
            pim.task_queue,
            "--workflow-id",
            workflow_id,
            "--input",
            json.dumps(request),
        )

        async def signal(name: str, *inputs: str) -> None:
            args = ["workflow", "signal", "-w", workflow_id, "--name", name]
            for value in inputs:
                args += ["--input", value]
            await temporal(address, *args)

        def refused(status: ActivationStatus) -> list[str]:
            return [e.note for e in status.events if e.note and "refused" in e.note]

        await settled(pim, workflow_id, State.pending_approval, timeout=PROMPT)
        while_pending = [
            ("hack", ["{}"], None),  # unknown name: ignored
            ("approve", [], "expected one argument, got 0"),  # no input
            ("approve", ['{"approver_id": "bob", "justification": "ok"}', '"extra"'], "got 2"),
            ("approve", ['{"approver_id": 5, "justification": "ok"}'], "approver_id"),
            ("approve", ["null"], "valid dictionary"),
            ("deny", ['["bob", "no"]'], "valid dictionary"),
            ("approve", ['{"approver_id": "b\u043eb", "justification": "ok"}'], "approver_id"),  # Cyrillic o
            ("deactivate", ['{"by": "alice", "reason": "done"}'], "cannot deactivate in state pending_approval"),
            (
                "extend",
                ['{"by": "alice", "duration": "PT1H", "justification": "more"}'],
                "cannot extend in state pending_approval",
            ),
            ("cancel", ['{"by": "alice", "reason": "x", "force": true}'], "force"),
        ]
        for name, inputs, _ in while_pending:
            await signal(name, *inputs)
        await asyncio.sleep(0.5)
        status = await settled(pim, workflow_id, State.pending_approval, timeout=PROMPT)
        notes = refused(status)
        pending_refusals = [(name, reason) for name, _, reason in while_pending if reason]
        assert len(notes) == len(pending_refusals), notes
        for note, (name, reason) in zip(notes, pending_refusals):
            assert note.startswith(f"{name} refused") and reason in note, (note, reason)
        assert not any("hack" in (e.note or "") for e in status.events)
        assert status.stages[0].decisions == []
        assert not await demo.has_membership("grp-ops", AccessType.member, "alice")

        # After all that, a valid approval still grants.
        approval = Decision(approver_id="bob", justification="failover approved")
        await signal("approve", json.dumps(signed(approval, "bob", Action.approve, workflow_id)))
        active = await settled(pim, workflow_id, State.active, timeout=PROMPT)
        assert [d.approver_id for d in active.stages[0].decisions] == ["bob"]
        assert await demo.has_membership("grp-ops", AccessType.member, "alice")

        while_active = [
            ("hack", ['{"approver_id": "bob"}'], None),
            ("approve", ['{"approver_id": "bob", "justification": "again"}'], "not pending approval"),
            (
                "extend",
                ['{"by": "alice", "duration": "P99999999D", "justification": "forever"}'],
                "duration: must be at most P3660D",
            ),
            ("extend", ['{"by": "alice", "duration": "-PT1H", "justification": "back"}'], "duration"),
            ("extend", ['{"by": "alice", "duration": 3600, "justification": "an hour"}', "{}"], "got 2"),
            ("cancel", ['{"by": "alice", "reason": "oops"}'], "cannot cancel in state active"),
        ]
        for name, inputs, _ in while_active:
            await signal(name, *inputs)
        more = Extend(by="alice", duration=timedelta(hours=1), justification="failover takes longer")
        await signal("extend", json.dumps(signed(more, "alice", Action.extend, workflow_id)))
        await asyncio.sleep(0.5)
        status = await settled(pim, workflow_id, State.active, timeout=PROMPT)
        notes = refused(status)[len(pending_refusals) :]
        active_refusals = [(name, reason) for name, _, reason in while_active if reason]
        assert len(notes) == len(active_refusals), notes
        for note, (name, reason) in zip(notes, active_refusals):
            assert note.startswith(f"{name} refused") and reason in note, (note, reason)
        assert status.expires_at == active.expires_at + timedelta(hours=1)  # the valid extension applied

        await signal(
            "deactivate", json.dumps(signed(Deactivate(by="admin", reason="test over"), "admin", Action.deactivate, workflow_id))
        )
        final = await pim.result(workflow_id)
        assert final.state == State.deactivated
        assert not await demo.has_membership("grp-ops", AccessType.member, "alice")
        assert await task_failures(address, workflow_id) == []


# --- property tests over the duration arithmetic --------------------------------

INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
DURATIONS = st.one_of(st.timedeltas(), st.timedeltas(min_value=-MAX_DURATION, max_value=MAX_DURATION * 2))
NUMBERS = st.one_of(st.integers(min_value=0, max_value=10**40).map(str), st.text("0123456789", min_size=1, max_size=40))
ISO = st.builds(
    lambda sign, d, h, m, s: f"{sign}P{d}DT{h}H{m}M{s}S", st.sampled_from(["", "-"]), NUMBERS, NUMBERS, NUMBERS, NUMBERS
)


def validated(model, **fields):
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        assert all(e["loc"][:1] == ("duration",) for e in error.errors()), error
        return None


@given(duration=st.one_of(DURATIONS, ISO), extra=st.one_of(DURATIONS, ISO), granted_at=INSTANTS)
@example(duration="P3660D", extra="P3660D", granted_at=datetime(2200, 1, 1, tzinfo=UTC))
@example(duration="P99999999D", extra="P9999999999D", granted_at=datetime(2200, 1, 1, tzinfo=UTC))
def test_validated_durations_never_overflow_instants_between_2000_and_2200(duration, extra, granted_at):
    """Whatever a payload holds, validation either refuses it (a ValidationError on
    `duration`, never an OverflowError that would fail the workflow task) or yields
    a duration whose sums with any instant of 2000..2200 stay representable."""
    request = validated(ActivationRequest, group_id="grp-dev", access="member", principal_id="alice", duration=duration)
    extend = validated(Extend, by="alice", duration=extra, justification="more time")
    if request is not None:
        assert timedelta(0) < request.duration <= MAX_DURATION
        expires_at = granted_at + request.duration
        assert expires_at - granted_at == request.duration
        if extend is not None:
            assert timedelta(0) < extend.duration <= MAX_DURATION
            moved = expires_at + extend.duration
            assert moved - granted_at == request.duration + extend.duration


SHORT = st.lists(
    st.tuples(st.one_of(NUMBERS, st.text("0123456789", min_size=41, max_size=400)), st.sampled_from("dhmsDHMS")),
    min_size=1,
    max_size=4,
).map(lambda parts: "".join(n + u for n, u in parts))


@given(text=st.one_of(SHORT, st.text(max_size=40), ISO))
@example(text="99999999999999999999d")
@example(text="0d0h")
@example(text=" P99999999D ")
def test_parse_duration_returns_a_bounded_duration_or_names_the_field(text):
    try:
        value = parse_duration(text, field="extend.duration")
    except ValueError as error:
        assert str(error).startswith("extend.duration: "), str(error)[:200]
    else:
        assert timedelta(0) < value <= MAX_DURATION


def test_parse_duration_names_the_field_even_for_thousands_of_digits():
    # More digits than int() converts by default (4300): still a refusal naming the field.
    with pytest.raises(ValueError) as refused:
        parse_duration("9" * 5000 + "d", field="extend.duration")
    assert str(refused.value).startswith("extend.duration: "), str(refused.value)[:120]


@pytest.mark.parametrize("text", ["1d", "P1D", "2h30m", "PT150M", "3660d"])
def test_parse_duration_accepts_what_people_type(text):
    assert timedelta(0) < parse_duration(text) <= MAX_DURATION
