"""The wire contract (pim/models.py) and the policy settings (pim/policy.py).

Payloads arrive as JSON from services, approvers and the `temporal` CLI. A bad
payload must be refused with a violation that names the field, never passed
on silently.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pim.domain.models import (
    AccessType,
    ActivationRequest,
    Cancel,
    Deactivate,
    Decision,
    Extend,
    MfaEvidence,
    Review,
    State,
    Ticket,
    activation_workflow_id,
    violations_from_validation_error,
)
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy

SPEC_EXAMPLE = """
{"group_id": "grp-ops", "access": "member", "principal_id": "alice",
 "duration": "PT2H", "justification": "INC-42 database failover",
 "ticket": {"system": "jira", "number": "OPS-123"},
 "mfa": {"method": "totp", "code": "123456"},
 "start_at": null, "validate_only": false}
"""

MINIMAL = {"group_id": "grp-ops", "access": "member", "principal_id": "alice"}


def refusal(payload: dict, model=ActivationRequest) -> list[str]:
    """The messages a user sees when the payload is refused."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    violations = violations_from_validation_error(caught.value)
    assert violations and all(v.code == "invalid_field" for v in violations)
    return [v.message for v in violations]


def fields_named(messages: list[str]) -> list[str]:
    return [m.split(":", 1)[0] for m in messages]


# --- ActivationRequest -------------------------------------------------------------


def test_the_spec_example_is_accepted_as_written():
    request = ActivationRequest.model_validate_json(SPEC_EXAMPLE)
    assert request.group_id == "grp-ops"
    assert request.access is AccessType.member
    assert request.principal_id == "alice"
    assert request.duration == timedelta(hours=2)
    assert request.justification == "INC-42 database failover"
    assert request.ticket == Ticket(system="jira", number="OPS-123")
    assert request.mfa is not None and request.mfa.code == "123456"
    assert request.start_at is None
    assert request.validate_only is False
    assert request.workflow_id == "activation/grp-ops/member/alice"


def test_the_spec_example_round_trips_through_json():
    request = ActivationRequest.model_validate_json(SPEC_EXAMPLE)
    wire = request.model_dump_json()
    assert '"duration":"PT2H"' in wire
    assert ActivationRequest.model_validate_json(wire) == request


def test_only_group_access_and_principal_are_required():
    request = ActivationRequest.model_validate(MINIMAL)
    assert request.duration is None and request.justification is None
    assert request.ticket is None and request.mfa is None and request.start_at is None
    assert request.validate_only is False


def test_an_aware_start_is_accepted_and_round_trips():
    request = ActivationRequest.model_validate({**MINIMAL, "start_at": "2026-11-28T15:00:00Z"})
    assert request.start_at == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert ActivationRequest.model_validate_json(request.model_dump_json()) == request


@pytest.mark.parametrize("missing", ["group_id", "access", "principal_id"])
def test_a_missing_required_field_is_named(missing):
    payload = {k: v for k, v in MINIMAL.items() if k != missing}
    assert fields_named(refusal(payload)) == [missing]


def test_an_empty_payload_names_every_required_field():
    assert sorted(fields_named(refusal({}))) == ["access", "group_id", "principal_id"]


def test_an_unknown_access_type_is_refused_naming_access():
    assert fields_named(refusal({**MINIMAL, "access": "admin"})) == ["access"]


@pytest.mark.parametrize("duration", ["PT0S", "-PT1H", 0, -60, "P0D"])
def test_a_zero_or_negative_duration_is_refused_naming_duration(duration):
    assert fields_named(refusal({**MINIMAL, "duration": duration})) == ["duration"]


def test_a_duration_that_is_not_a_duration_is_refused_naming_duration():
    assert fields_named(refusal({**MINIMAL, "duration": "two hours"})) == ["duration"]


def test_a_start_without_a_zone_is_refused_naming_start_at():
    assert fields_named(refusal({**MINIMAL, "start_at": "2026-11-28T15:00:00"})) == ["start_at"]


def test_a_naive_python_datetime_is_refused_too():
    with pytest.raises(ValidationError):
        ActivationRequest(**MINIMAL, start_at=datetime(2026, 11, 28, 15, 0))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**MINIMAL, "durtion": "PT2H"}, "durtion"),
        ({**MINIMAL, "ticket": {"system": "jira", "number": "OPS-1", "url": "https://x"}}, "ticket.url"),
        ({**MINIMAL, "mfa": {"method": "totp", "code": "123456", "secret": "s"}}, "mfa.secret"),
    ],
)
def test_unknown_fields_are_refused_never_ignored(payload, field):
    assert fields_named(refusal(payload)) == [field]


def test_a_justification_longer_than_2000_characters_is_refused_not_truncated():
    assert ActivationRequest.model_validate({**MINIMAL, "justification": "x" * 2000}).justification == "x" * 2000
    assert fields_named(refusal({**MINIMAL, "justification": "x" * 2001})) == ["justification"]


def test_an_empty_ticket_number_is_refused_naming_it():
    assert fields_named(refusal({**MINIMAL, "ticket": {"system": "jira", "number": "   "}})) == ["ticket.number"]


def test_ticket_fields_are_trimmed():
    assert Ticket(system=" jira ", number=" OPS-1 ") == Ticket(system="jira", number="OPS-1")


# --- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["alice", "grp-ops", "alice@example.com", "svc.deploy_1", "A1", "a" * 128])
def test_plain_ids_are_accepted(good):
    request = ActivationRequest.model_validate({**MINIMAL, "principal_id": good, "group_id": good})
    assert request.principal_id == good and request.group_id == good


@pytest.mark.parametrize(
    "bad",
    [
        "\u0430lice",  # Cyrillic a
        "alic\u0435",  # Cyrillic e
        "\uff41lice",  # fullwidth a
        "al ice",
        " alice",
        "alice ",
        "alice\n",
        "ali\x00ce",
        "ali/ce",  # would break the workflow id
        "-alice",
        ".alice",
        "",
        "a" * 129,
    ],
)
@pytest.mark.parametrize("field", ["principal_id", "group_id"])
def test_ids_with_look_alikes_spaces_or_control_characters_are_refused(field, bad):
    assert fields_named(refusal({**MINIMAL, field: bad})) == [field]


def test_the_workflow_id_follows_the_spec():
    assert activation_workflow_id("grp-ops", "owner", "alice") == "activation/grp-ops/owner/alice"
    with pytest.raises(ValueError):
        activation_workflow_id("grp-ops", "admin", "alice")


# --- violations_from_validation_error ---------------------------------------------------


def test_violations_can_carry_a_prefix_for_nested_payloads():
    with pytest.raises(ValidationError) as caught:
        ActivationRequest.model_validate({**MINIMAL, "duration": "PT0S"})
    [violation] = violations_from_validation_error(caught.value, prefix="request.")
    assert violation.code == "invalid_field"
    assert violation.message.startswith("request.duration:")


def test_a_model_level_error_is_named_payload():
    with pytest.raises(ValidationError) as caught:
        ActivationRequest.model_validate("not an object")
    [violation] = violations_from_validation_error(caught.value)
    assert violation.message.startswith("payload:")


def test_an_error_that_is_not_a_validation_error_is_an_invalid_request():
    [violation] = violations_from_validation_error(RuntimeError("boom" * 200))
    assert violation.code == "invalid_request"
    assert violation.message.startswith("boom")
    assert len(violation.message) <= 300


# --- MFA evidence never shows its code ------------------------------------------------------


def test_mfa_evidence_never_shows_its_code():
    evidence = MfaEvidence(code="987654")
    assert "987654" not in repr(evidence)
    assert "987654" not in str(evidence)
    assert "987654" not in f"{evidence}"


def test_a_request_carrying_mfa_never_shows_the_code_either():
    request = ActivationRequest.model_validate({**MINIMAL, "mfa": {"method": "totp", "code": "987654"}})
    assert "987654" not in repr(request)
    assert "987654" not in str(request)


@pytest.mark.parametrize("mfa", [{"method": "sms", "code": "987654"}, {"code": 987654}, {"code": "987654" * 11}])
def test_a_refused_mfa_payload_does_not_echo_the_code(mfa):
    messages = refusal({**MINIMAL, "mfa": mfa})
    assert all(field.startswith("mfa.") for field in fields_named(messages))
    assert not any("987654" in m for m in messages)


def test_only_totp_is_a_known_mfa_method():
    assert fields_named(refusal({**MINIMAL, "mfa": {"method": "sms", "code": "1"}})) == ["mfa.method"]


def test_a_vouched_sign_in_carries_when_and_how_and_nothing_else():
    evidence = MfaEvidence.model_validate({"method": "signin", "auth_time": 1796000000, "amr": ["otp", "mfa"]})
    assert evidence.model_dump(mode="json") == {
        "method": "signin",
        "sealed": False,
        "auth_time": 1796000000,
        "amr": ["otp", "mfa"],
    }


@pytest.mark.parametrize(
    "mfa, field",
    [
        ({"method": "signin"}, "mfa.auth_time"),
        ({"method": "signin", "auth_time": "1796000000"}, "mfa.auth_time"),
        ({"method": "signin", "auth_time": 1796000000, "code": "123456"}, "mfa"),
        ({"method": "totp", "code": "123456", "auth_time": 1796000000}, "mfa.auth_time"),
    ],
)
def test_a_vouched_sign_in_is_refused_in_any_other_shape(mfa, field):
    assert field in fields_named(refusal({**MINIMAL, "mfa": mfa}))


# --- signal and update payloads -------------------------------------------------------------


def test_the_spec_signal_payloads_are_accepted():
    assert Decision.model_validate_json('{"approver_id": "bob", "justification": "ok"}').approver_id == "bob"
    assert Review.model_validate_json('{"approver_id": "bob", "decision": "deny", "justification": "ok"}').decision == "deny"
    assert Cancel.model_validate_json('{"by": "alice", "reason": "not needed"}').by == "alice"
    assert Deactivate.model_validate_json('{"by": "alice", "reason": "done"}').reason == "done"
    assert Extend.model_validate_json('{"by": "alice", "duration": "PT1H", "justification": "..."}').duration == timedelta(
        hours=1
    )


def test_a_review_decision_is_approve_or_deny():
    assert fields_named(refusal({"approver_id": "bob", "decision": "maybe"}, Review)) == ["decision"]


@pytest.mark.parametrize("duration", ["PT0S", "-PT1H"])
def test_an_extension_must_be_positive(duration):
    assert fields_named(refusal({"by": "alice", "duration": duration}, Extend)) == ["duration"]


def test_an_extension_needs_a_duration():
    assert fields_named(refusal({"by": "alice"}, Extend)) == ["duration"]


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (Decision, {"approver_id": "bob", "approved": True}, "approved"),
        (Cancel, {"by": "alice", "why": "x"}, "why"),
        (Deactivate, {"by": "b\u043eb"}, "by"),
        (Review, {"approver_id": "bob bob", "decision": "approve"}, "approver_id"),
        (Cancel, {"by": "alice", "reason": "x" * 2001}, "reason"),
    ],
)
def test_bad_signal_payloads_name_the_field(model, payload, field):
    assert fields_named(refusal(payload, model)) == [field]


def test_terminal_states_are_those_of_the_spec():
    assert {s.value for s in State if s.terminal} == {
        "rejected",
        "denied",
        "approval_expired",
        "canceled",
        "expired",
        "deactivated",
        "failed",
    }
    assert len(State) == 13


# --- Policy defaults (SPEC section 2) ----------------------------------------------------------


def test_policy_defaults_match_the_spec_table():
    policy = Policy()
    activation = policy.activation
    assert activation.max_duration == timedelta(hours=8)
    assert activation.min_duration == timedelta(minutes=5)
    assert activation.require_mfa is False
    assert activation.require_justification is True
    assert activation.require_ticket is False
    assert activation.approval == []
    assert activation.approval_timeout == timedelta(hours=24)
    assert activation.approver_justification_required is True

    assert policy.eligible_assignment.allow_permanent is False
    assert policy.eligible_assignment.max_duration == timedelta(days=365)

    assert policy.active_assignment.allow_permanent is False
    assert policy.active_assignment.max_duration == timedelta(days=180)
    assert policy.active_assignment.require_justification is True
    assert policy.active_assignment.require_mfa is False

    assert policy.notifications.channels == ["log"]
    assert set(policy.notifications.recipients) == {"admins", "requestor", "approvers"}


def test_policy_defaults_serialize_as_the_spec_writes_them():
    dumped = Policy().model_dump(mode="json")
    assert dumped["activation"]["max_duration"] == "PT8H"
    assert dumped["activation"]["min_duration"] == "PT5M"
    # Pydantic writes PT24H as "P1D" and P365D as "P1Y" (365 days); what matters is
    # that it reads back as the same policy.
    assert Policy.model_validate(dumped) == Policy()
    assert Policy.model_validate(dumped).activation.approval_timeout == timedelta(hours=24)


def test_each_policy_gets_its_own_default_lists():
    one, other = Policy(), Policy()
    one.notifications.channels.append("email")
    assert other.notifications.channels == ["log"]


@pytest.mark.parametrize("max_duration", ["PT30M", "PT8H", "PT24H"])
def test_a_maximum_between_30_minutes_and_24_hours_is_allowed(max_duration):
    assert ActivationSettings.model_validate({"max_duration": max_duration}).max_duration > timedelta(0)


@pytest.mark.parametrize("max_duration", ["PT29M59S", "PT24H1S", "P2D", "PT0S", "-PT8H"])
def test_a_maximum_outside_30_minutes_to_24_hours_is_refused(max_duration):
    with pytest.raises(ValidationError, match="max_duration"):
        ActivationSettings.model_validate({"max_duration": max_duration})


@pytest.mark.parametrize("min_duration", ["PT4M59S", "PT9H"])
def test_a_minimum_below_5_minutes_or_above_the_maximum_is_refused(min_duration):
    with pytest.raises(ValidationError, match="min_duration"):
        ActivationSettings.model_validate({"min_duration": min_duration})


@pytest.mark.parametrize("timeout", ["PT0S", "-PT1H"])
def test_a_non_positive_approval_timeout_is_refused(timeout):
    with pytest.raises(ValidationError, match="approval_timeout"):
        ActivationSettings.model_validate({"approval_timeout": timeout})


def test_changing_a_policy_is_validated_too():
    policy = Policy()
    with pytest.raises(ValidationError):
        policy.activation.max_duration = timedelta(hours=25)


def test_unknown_policy_settings_are_refused():
    with pytest.raises(ValidationError):
        Policy.model_validate({"activation": {"max_duraton": "PT4H"}})


def test_an_approval_stage_needs_approvers_and_at_least_one_approval():
    assert ApprovalStage(approvers=["bob"]).required == 1
    with pytest.raises(ValidationError):
        ApprovalStage(approvers=[])
    with pytest.raises(ValidationError):
        ApprovalStage(approvers=[""])
    with pytest.raises(ValidationError):
        ApprovalStage(approvers=["bob"], required=0)


def test_a_ticket_pattern_that_is_not_a_regular_expression_is_refused_when_the_policy_is_saved():
    # Otherwise every request carrying a ticket crashes check_ticket with re.error
    # instead of ending with a violation.
    with pytest.raises(ValidationError, match="ticket_pattern"):
        ActivationSettings(ticket_pattern="OPS-[0-9")


def test_a_request_passing_through_a_state_is_listed_under_the_one_it_came_from():
    # PimState is not written for activating and revoking (pim/domain/models.py).
    from pim.domain.models import PASSING_STATES, listed_as, may_be_in

    assert PASSING_STATES == {State.activating, State.revoking}
    assert listed_as(State.active) == {State.active}
    assert listed_as(State.activating) == {State.validating, State.pending_approval, State.scheduled}
    assert listed_as(State.revoking) == {State.validating, State.pending_approval, State.scheduled, State.active}
    # Every state a request can rest in is written, so every listing finds its requests.
    for state in State:
        assert all(shown not in PASSING_STATES for shown in listed_as(state))
        assert all(state in may_be_in(shown) for shown in listed_as(state))
    assert may_be_in(State.active) == {State.active, State.revoking}
    assert may_be_in(State.expired) == {State.expired}
