"""The administration pages' pure parts, without a browser: the policy editor's fields
and back, the API's refusals read into form fields, the audit's CSV."""

from __future__ import annotations

import csv
import io

import pytest

from pim.domain.models import AccessType
from pim.domain.policy import Policy, default_policy
from pim.portal import admin_assignments, admin_policy
from pim.portal.admin_audit import audit_csv_text, audit_query
from pim.portal.admin_common import field_errors, utc_instant
from pim.portal.backend import ApiError


@pytest.mark.parametrize("policy", [Policy(), default_policy(AccessType.owner, role_assignable=True)])
def test_an_untouched_policy_form_changes_nothing(policy):
    shown = policy.model_dump(mode="json")
    assert admin_policy.changed_settings(admin_policy.form_of(shown), shown) == []


def test_the_policy_form_sends_only_what_changed_as_json():
    shown = Policy().model_dump(mode="json")
    values = admin_policy.form_of(shown)
    values["activation.max_duration"] = "4h"  # as people type it: sent as ISO 8601
    values["activation.ticket_pattern"] = "123"  # a string, though it reads as a JSON number
    values["activation.approval"] = "2 of bob, carol\n\nrole:Global Administrator"
    values["activation.max_extensions"] = "many"  # sent as typed: the API refuses it at its field
    values["notifications.channels"] = ["email", "log"]
    values["notifications.recipients"] = list(reversed(values["notifications.recipients"]))  # the same set: unchanged
    assert admin_policy.changed_settings(values, shown) == [
        'activation.max_duration="PT4H"',
        'activation.ticket_pattern="123"',
        'activation.approval=[{"approvers": ["bob", "carol"], "required": 2}, '
        '{"approvers": ["role:Global Administrator"], "required": 1}]',
        'activation.max_extensions="many"',
        'notifications.channels=["log", "email"]',
    ]


def test_each_problem_of_a_refused_policy_goes_to_its_field():
    refused = ApiError(
        400,
        "BadRequest",
        "...",
        [
            {
                "code": "invalid_policy",
                "message": "activation.max_duration must be between PT30M and PT24H; "
                "activation.approval.0.required: Input should be less than or equal to 50; "
                "activation.max_extensions: Input should be a valid integer",
            }
        ],
    )
    assert field_errors(refused, admin_policy.TARGETS) == {
        "activation.max_duration": "activation.max_duration must be between PT30M and PT24H",
        "activation.approval": "activation.approval.0.required: Input should be less than or equal to 50",
        "activation.max_extensions": "Input should be a valid integer",
    }


def test_a_message_with_a_semicolon_of_its_own_stays_whole():
    message = "principal: already has a eligible assignment asg-1; extend it instead; justification: required"
    refused = ApiError(400, "BadRequest", message, [{"code": "assignment_exists", "message": message}])
    assert field_errors(refused, admin_assignments.TARGETS) == {
        "principal_id": "already has a eligible assignment asg-1; extend it instead",
        "justification": "required",
    }
    nowhere = ApiError(403, "Authorization_RequestDenied", "dave may not onboard grp-x", [])
    assert field_errors(nowhere, admin_assignments.TARGETS) == {"": "dave may not onboard grp-x"}


def test_the_assignment_form_gives_exactly_one_end():
    body, errors = admin_assignments.assignment_body("grp-dev", {"principal_id": "bob", "kind": "eligible", "duration": "30d"})
    assert errors == {} and body["duration"] == "P30D" and "ends_at" not in body and "permanent" not in body
    body, errors = admin_assignments.assignment_body("grp-dev", {"end": "until", "ends_at": "2027-01-01T08:00"})
    assert errors == {} and body["ends_at"] == "2027-01-01T08:00:00+00:00"
    assert admin_assignments.assignment_body("grp-dev", {"end": "permanent"})[0]["permanent"] is True
    assert "duration" in admin_assignments.assignment_body("grp-dev", {"duration": "soon"})[1]
    assert admin_assignments.change_body("extend", {"duration": "1d", "ends_at": "2027-01-01"})[1] == {
        "duration": "give a duration or a new end (one of the two)"
    }


def test_the_audit_filters_and_csv():
    assert utc_instant("2026-12-01T10:00") == "2026-12-01T10:00:00+00:00"
    assert audit_query({"group": "grp-ops", "principal": "", "since": "yesterday"})[1] == {
        "since": "a date and time, e.g. 2026-12-24T08:00 (UTC)"
    }
    line = {
        "at": "2026-12-02T10:05:12+00:00",
        "action": "assignment_created",
        "actor": "admin",
        "request_id": None,
        "group_id": "grp-ops",
        "access": "member",
        "principal_id": "bob",
        "details": {"justification": '=HYPERLINK("x")', "kind": "eligible"},
    }
    hostile = {**line, "principal_id": "@evil", "actor": "-1+1"}
    rows = list(csv.reader(io.StringIO(audit_csv_text([line, hostile]))))
    assert rows[0] == ["at", "action", "actor", "request_id", "group_id", "access", "principal_id", "details"]
    assert rows[1][:7] == ["2026-12-02T10:05:12+00:00", "assignment_created", "admin", "", "grp-ops", "member", "bob"]
    assert rows[1][7] == '{"justification": "=HYPERLINK(\\"x\\")", "kind": "eligible"}'  # JSON: starts with {
    assert rows[2][2] == "'-1+1" and rows[2][6] == "'@evil"  # no cell a spreadsheet runs as a formula
