"""What `pim status` prints for a request (pim/cli/describe.py), and when its
quick path (pim/cli/quick.py) is taken: the same lines from the model and from
the query's raw JSON, decisions written as people say them, and the full path
whenever a setting changes how the command line talks to Temporal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pim.cli import quick
from pim.cli.describe import describe_status
from pim.cli.requests import describe
from pim.domain.status import ActivationStatus
from pim.runtime.codec import ENCODING
from pim.runtime.settings import PimSettings

PIM = str(Path(sys.executable).parent / "pim")

STATUS = {
    "request_id": "activation/grp-ops/member/alice",
    "state": "pending_approval",
    "group_id": "grp-ops",
    "access": "member",
    "principal_id": "alice",
    "requested_duration": "PT2H",
    "requested_at": "2026-12-02T06:55:34.471520Z",
    "approval_deadline": "2026-12-03T06:55:34Z",
    "stages": [
        {
            "approvers": ["bob", "carol"],
            "required": 2,
            "decisions": [
                {"approver_id": "bob", "decision": "approve", "at": "2026-12-02T07:00:00Z", "justification": "ok"},
                {"approver_id": "carol", "decision": "deny", "at": "2026-12-02T07:01:00+01:00", "justification": "no"},
            ],
        },
        {"approvers": ["dave"], "required": 1, "decisions": []},
    ],
    "starts_at": "2026-12-02T09:00:00+01:00",
    "end_reason": "waiting",
    "violations": [{"code": "ticket_required", "message": "ticket: required"}],
}

EXPECTED = """\
activation/grp-ops/member/alice: pending_approval
  member of grp-ops for alice
  duration: PT2H
  stage 1: 1/2 approvals from bob, carol (bob approved, carol denied)
  stage 2: 0/1 approvals from dave (no decision yet)
  approval deadline: 2026-12-03T06:55:34+00:00
  starts at: 2026-12-02T09:00:00+01:00
  reason: waiting
  violation ticket_required: ticket: required"""


def test_a_status_reads_as_people_say_it():
    assert describe_status(STATUS) == EXPECTED
    assert "denyd" not in EXPECTED and "approved" in EXPECTED


def test_the_model_and_the_raw_answer_print_the_same():
    model = ActivationStatus.model_validate(STATUS)
    assert describe(model) == EXPECTED  # the full path: through the model
    assert describe_status(model.model_dump(mode="json")) == EXPECTED


@pytest.mark.parametrize(
    "argv, parsed",
    [
        (["status", "activation/a/member/b"], ("activation/a/member/b", False)),
        (["status", "activation/a/member/b", "--json"], ("activation/a/member/b", True)),
        (["status", "--json", "activation/a/member/b"], ("activation/a/member/b", True)),
        (["status"], None),
        (["status", "--help"], None),
        (["status", "a", "b"], None),
        (["status", "a", "--jsn"], None),
        (["requests"], None),
        ([], None),
    ],
)
def test_the_quick_path_takes_exactly_status_id(argv, parsed):
    assert quick.status_arguments(argv) == parsed


def test_the_address_is_found_as_the_full_path_finds_it(tmp_path):
    no_file = {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    assert quick.connection(no_file) == ("localhost:7233", "default")
    assert quick.connection({**no_file, "TEMPORAL_ADDRESS": "t:1", "TEMPORAL_NAMESPACE": "ns"}) == ("t:1", "ns")
    both = {**no_file, "TEMPORAL_ADDRESS": "t:1", "PIM_TEMPORAL_ADDRESS": "p:2", "pim_namespace": "mine"}
    assert quick.connection(both) == ("p:2", "mine")  # an explicit PIM_ setting wins, in any case


@pytest.mark.parametrize(
    "setting",
    [
        {"PIM_PAYLOAD_KEYS": "k1:AAAA"},
        {"PIM_OTEL": "console"},
        {"PIM_TEMPORAL_API_KEY": "secret"},
        {"PIM_TEMPORAL_TLS": "true"},
        {"pim_temporal_tls_ca": "/etc/ca.pem"},
        {"TEMPORAL_API_KEY": "secret"},
        {"TEMPORAL_TLS": "true"},
    ],
)
def test_a_setting_that_shapes_the_connection_takes_the_full_path(setting, tmp_path):
    with pytest.raises(quick.FullPath):
        quick.connection({"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"), **setting})


def test_every_connection_setting_is_known_to_the_quick_path():
    """A new PIM_TEMPORAL_* setting must send the quick path the full way (or be taught to it)."""
    shaping = {name for name in PimSettings.model_fields if name.startswith("temporal_")} - {"temporal_address"}
    assert shaping | {"payload_keys", "otel"} == quick.CONNECTION_SETTINGS
    assert ENCODING == b"binary/encrypted"  # what the quick path refuses without keys


def test_an_unreachable_temporal_is_one_line_on_the_quick_path(tmp_path):
    result = subprocess.run(
        [PIM, "status", "activation/grp-ops/member/alice"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PIM_TEMPORAL_ADDRESS": "127.0.0.1:1", "HOME": str(tmp_path)},
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: cannot reach Temporal at 127.0.0.1:1 (is `pim dev` or the server running?)\n"
