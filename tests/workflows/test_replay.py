"""Determinism guard: every recorded history of `GroupActivation` replays on
the current code. A change that breaks one goes behind `workflow.patched`
(record new histories with `python -m tests.histories.record`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("group_activation.*.json"))
EXPECTED_END = {
    "approved_and_expired": "expired", "denied": "denied", "approval_expired": "approval_expired",
    "canceled": "canceled", "deactivated": "deactivated", "extended": "expired", "rejected": "rejected",
    "scheduled": "expired", "malformed": "rejected",
}


def test_there_is_a_history_for_every_path():
    recorded = {path.name.split(".")[1] for path in HISTORIES}
    assert set(EXPECTED_END) <= recorded


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays_on_current_code(path: Path):
    raw = path.read_text()
    history = WorkflowHistory.from_json(path.stem, raw)
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(history)

    # And the recording is of the path it is named after.
    events = json.loads(raw)["events"]
    completed = events[-1]["workflowExecutionCompletedEventAttributes"]
    final = json.loads(base64.b64decode(completed["result"]["payloads"][0]["data"]))
    assert final["state"] == EXPECTED_END[path.name.split(".")[1]]
