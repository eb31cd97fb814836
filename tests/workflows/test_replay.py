"""Determinism guard: every recorded history of `GroupActivation` and of
`AssignmentLifecycle` replays on the current code. Until version 1.0.0 a change
of workflow commands re-records them (`python -m tests.histories.record`); from
1.0.0 on it goes behind `workflow.patched` and the older files keep replaying."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS

HERE = Path(__file__).parent.parent / "histories"
HISTORIES = sorted([*HERE.glob("group_activation.*.json"), *HERE.glob("assignment_lifecycle.*.json")])
# Per workflow (the file name's prefix), the final state of each recorded path.
EXPECTED_END = {
    "group_activation": {
        "approved_and_expired": "expired",
        "denied": "denied",
        "approval_expired": "approval_expired",
        "canceled": "canceled",
        "deactivated": "deactivated",
        "extended": "expired",
        "rejected": "rejected",
        "scheduled": "expired",
        "malformed": "rejected",
    },
    "assignment_lifecycle": {"expired": "expired", "extended": "expired", "removed": "removed", "renewed": "expired"},
}


def test_each_history_names_the_version_that_recorded_it():
    for path in HISTORIES:
        version = path.name.split(".", 2)[2].removesuffix(".json")
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{path.name}: no version in the name"


def test_there_is_a_history_for_every_path():
    recorded = {tuple(path.name.split(".")[:2]) for path in HISTORIES}
    expected = {(workflow, name) for workflow, ends in EXPECTED_END.items() for name in ends}
    assert expected <= recorded


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays_on_current_code(path: Path):
    raw = path.read_text()
    history = WorkflowHistory.from_json(path.stem, raw)
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(history)

    # And the recording is of the path it is named after.
    events = json.loads(raw)["events"]
    completed = events[-1]["workflowExecutionCompletedEventAttributes"]
    final = json.loads(base64.b64decode(completed["result"]["payloads"][0]["data"]))
    workflow, name = path.name.split(".")[:2]
    assert final["state"] == EXPECTED_END[workflow][name]
