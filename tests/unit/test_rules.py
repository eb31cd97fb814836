"""The policy engine (pim/rules.py), rule by rule.

Each test is a small story: a requester, a policy, what the store knows, and
what the requester (or approver) is told. Violations are asserted by their
stable code and by the field their message names, since that is what a user
sees in `ActivationStatus.violations`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pim.domain.activation_rules import (
    EARLY_DEACTIVATION_WINDOW,
    EligibilityFacts,
    check_approvers,
    check_duration,
    check_eligibility,
    check_justification,
    check_mfa_presence,
    check_not_running,
    check_schedule,
    check_target,
    check_ticket,
    evaluate_request,
    refuse_cancel,
    refuse_deactivation,
    refuse_extension,
    refuse_review,
    requested_duration,
)
from pim.domain.models import ActivationRequest, ReviewDecision, Violation
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.domain.status import StageDecision, StageStatus

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
REQUEST_ID = "activation/grp-ops/member/alice"
GOOD_REASON = "INC-42 database failover"


def a_request(**overrides) -> ActivationRequest:
    fields = {
        "group_id": "grp-ops",
        "access": "member",
        "principal_id": "alice",
        "duration": timedelta(hours=2),
        "justification": GOOD_REASON,
    }
    fields.update(overrides)
    return ActivationRequest.model_validate(fields)


def eligible_facts(**overrides) -> EligibilityFacts:
    fields = {"eligible_via": ["direct"]}
    fields.update(overrides)
    return EligibilityFacts(**fields)


def a_policy(*stages: ApprovalStage, **activation) -> Policy:
    return Policy(activation=ActivationSettings(approval=list(stages), **activation))


def codes(violations: list[Violation]) -> list[str]:
    return [v.code for v in violations]


def only(violations: list[Violation], code: str) -> Violation:
    assert codes(violations) == [code]
    return violations[0]


# --- check_target ------------------------------------------------------------


def test_a_request_for_an_unknown_group_is_refused_naming_group_id():
    v = only(check_target(EligibilityFacts(group_exists=False), a_request(group_id="grp-nope")), "group_not_found")
    assert v.message.startswith("group_id:")
    assert "grp-nope" in v.message


def test_a_group_not_onboarded_in_pim_is_refused_naming_group_id():
    v = only(check_target(EligibilityFacts(group_enabled=False), a_request()), "group_not_enabled")
    assert v.message.startswith("group_id:")
    assert "grp-ops" in v.message


def test_an_unknown_principal_is_refused_naming_principal_id():
    v = only(check_target(EligibilityFacts(principal_kind=None), a_request(principal_id="zoe")), "principal_not_found")
    assert v.message.startswith("principal_id:")
    assert "zoe" in v.message


def test_a_group_cannot_activate_for_itself():
    v = only(check_target(EligibilityFacts(principal_kind="group"), a_request(principal_id="grp-sre")), "principal_not_user")
    assert v.message.startswith("principal_id:")


def test_the_target_is_reported_one_problem_at_a_time_group_first():
    facts = EligibilityFacts(group_exists=False, group_enabled=False, principal_kind=None)
    assert codes(check_target(facts, a_request())) == ["group_not_found"]


def test_a_known_user_on_an_enabled_group_passes_the_target_check():
    assert check_target(EligibilityFacts(), a_request()) == []


# --- check_eligibility ----------------------------------------------------------


def test_a_user_with_no_eligibility_is_told_so_naming_principal_id():
    v = only(check_eligibility(EligibilityFacts(eligible_via=[]), a_request(access="owner")), "not_eligible")
    assert v.message.startswith("principal_id:")
    assert "alice" in v.message and "owner" in v.message and "grp-ops" in v.message


@pytest.mark.parametrize("via", [["direct"], ["group:grp-sre"], ["direct", "group:grp-sre"]])
def test_a_user_eligible_directly_or_through_an_eligible_group_passes(via):
    assert check_eligibility(EligibilityFacts(eligible_via=via), a_request()) == []


# --- check_not_running ----------------------------------------------------------


def test_a_second_activation_while_another_runs_is_refused_naming_the_running_one():
    other = "activation/grp-ops/member/alice-2"
    v = only(check_not_running(eligible_facts(running_request_id=other), REQUEST_ID), "already_active")
    assert other in v.message


def test_the_running_activation_is_named_by_its_workflow_id_not_its_run_key():
    # The store holds the claim as "<workflow id>#<run id>"; the user sees the workflow id.
    running = "activation/grp-ops/member/alice#0b3c5e1a-run"
    v = only(check_not_running(eligible_facts(running_request_id=running), REQUEST_ID + "#new-run"), "already_active")
    assert "activation/grp-ops/member/alice" in v.message
    assert "#" not in v.message and "0b3c5e1a" not in v.message


def test_the_running_activation_is_not_refused_because_of_itself():
    own_run = REQUEST_ID + "#run-1"
    assert check_not_running(eligible_facts(running_request_id=own_run), own_run) == []
    assert check_not_running(eligible_facts(running_request_id=REQUEST_ID), REQUEST_ID) == []


def test_nothing_running_means_no_conflict():
    assert check_not_running(eligible_facts(), REQUEST_ID) == []


# --- durations -------------------------------------------------------------------


def test_a_duration_shorter_than_the_minimum_is_refused_naming_duration():
    v = only(check_duration(timedelta(minutes=4), ActivationSettings()), "duration_too_short")
    assert v.message.startswith("duration:")
    assert "PT5M" in v.message


def test_a_duration_above_the_maximum_is_refused_naming_both():
    v = only(check_duration(timedelta(hours=9), ActivationSettings()), "duration_exceeds_max")
    assert v.message.startswith("duration:")
    assert "PT9H" in v.message and "PT8H" in v.message


@pytest.mark.parametrize("duration", [timedelta(minutes=5), timedelta(hours=8)])
def test_the_minimum_and_the_maximum_themselves_are_allowed(duration):
    assert check_duration(duration, ActivationSettings()) == []


def test_a_request_without_a_duration_gets_the_policy_maximum():
    assert requested_duration(a_request(duration=None), ActivationSettings()) == timedelta(hours=8)
    assert requested_duration(a_request(duration=None), ActivationSettings(max_duration=timedelta(hours=4))) == timedelta(hours=4)


def test_a_request_with_a_duration_keeps_it():
    assert requested_duration(a_request(duration=timedelta(minutes=45)), ActivationSettings()) == timedelta(minutes=45)


# --- check_schedule --------------------------------------------------------------


def test_an_activation_that_would_outlive_the_eligibility_is_refused():
    until = AT + timedelta(hours=1)
    v = only(
        check_schedule(a_request(), timedelta(hours=2), eligible_facts(eligible_until=until), AT),
        "eligibility_ends_first",
    )
    assert v.message.startswith("duration:")
    assert until.isoformat() in v.message


def test_an_activation_ending_exactly_with_the_eligibility_is_allowed():
    facts = eligible_facts(eligible_until=AT + timedelta(hours=2))
    assert check_schedule(a_request(), timedelta(hours=2), facts, AT) == []


def test_a_permanent_eligibility_never_ends_first():
    assert check_schedule(a_request(), timedelta(hours=8), eligible_facts(eligible_until=None), AT) == []


def test_a_scheduled_start_counts_from_the_start_not_from_now():
    request = a_request(start_at=AT + timedelta(hours=1))
    facts = eligible_facts(eligible_until=AT + timedelta(hours=2, minutes=30))
    assert codes(check_schedule(request, timedelta(hours=2), facts, AT)) == ["eligibility_ends_first"]


def test_a_start_in_the_past_is_refused_naming_the_field():
    request = a_request(start_at=AT - timedelta(hours=1))
    facts = eligible_facts(eligible_until=AT + timedelta(hours=4))
    assert codes(check_schedule(request, timedelta(hours=2), facts, AT)) == ["start_in_past"]
    assert check_schedule(request, timedelta(hours=2), facts, AT)[0].message.startswith("start_at:")


def test_a_start_a_few_seconds_ago_counts_from_now():
    """A client's clock a little behind the worker's is no reason to refuse."""
    request = a_request(start_at=AT - timedelta(seconds=20))
    facts = eligible_facts(eligible_until=AT + timedelta(hours=2, seconds=30))
    assert check_schedule(request, timedelta(hours=2), facts, AT) == []


# --- check_justification -----------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", " \t\n "])
def test_a_missing_or_blank_justification_is_required(text):
    v = only(check_justification(text, ActivationSettings()), "justification_required")
    assert v.message.startswith("justification:")


@pytest.mark.parametrize(
    "text", ["n/a", "N/A", "  TBD  ", "need access", "Need   Access", "aaaaaaa", "a a a a a a a a a a", "..........", "?"]
)
def test_a_placeholder_justification_is_refused(text):
    v = only(check_justification(text, ActivationSettings()), "justification_placeholder")
    assert v.message.startswith("justification:")


def test_a_too_short_justification_says_how_long_it_must_be():
    v = only(check_justification("fix db", ActivationSettings()), "justification_too_short")
    assert v.message.startswith("justification:")
    assert "10" in v.message


def test_a_justification_of_exactly_the_minimum_length_is_fine():
    assert check_justification("restart db", ActivationSettings()) == []
    assert codes(check_justification("restart d", ActivationSettings())) == ["justification_too_short"]


def test_a_real_justification_is_fine():
    assert check_justification(GOOD_REASON, ActivationSettings()) == []


@pytest.mark.parametrize("text", [None, "", "n/a", "x"])
def test_no_justification_check_when_the_policy_does_not_require_one(text):
    assert check_justification(text, ActivationSettings(require_justification=False)) == []


def test_the_justification_message_names_the_field_it_was_asked_for():
    v = only(check_justification(None, ActivationSettings(), field="extend.justification"), "justification_required")
    assert v.message.startswith("extend.justification:")


# --- check_ticket ----------------------------------------------------------------------


def test_a_missing_ticket_is_required_when_the_policy_says_so():
    v = only(check_ticket(a_request(ticket=None), ActivationSettings(require_ticket=True)), "ticket_required")
    assert v.message.startswith("ticket:")


def test_no_ticket_is_fine_when_the_policy_does_not_require_one():
    assert check_ticket(a_request(ticket=None), ActivationSettings()) == []


def test_a_ticket_number_that_does_not_match_the_pattern_is_refused():
    settings = ActivationSettings(require_ticket=True, ticket_pattern=r"OPS-\d+")
    request = a_request(ticket={"system": "jira", "number": "ops-12x"})
    v = only(check_ticket(request, settings), "ticket_invalid")
    assert v.message.startswith("ticket.number:")
    assert r"OPS-\d+" in v.message


def test_the_pattern_must_match_the_whole_number():
    settings = ActivationSettings(ticket_pattern=r"OPS-\d+")
    assert codes(check_ticket(a_request(ticket={"system": "jira", "number": "OPS-123 and more"}), settings)) == ["ticket_invalid"]


def test_a_ticket_number_matching_the_pattern_is_fine():
    settings = ActivationSettings(require_ticket=True, ticket_pattern=r"OPS-\d+")
    assert check_ticket(a_request(ticket={"system": "jira", "number": "OPS-123"}), settings) == []


def test_any_ticket_is_fine_without_a_pattern():
    assert check_ticket(a_request(ticket={"system": "snow", "number": "whatever"}), ActivationSettings(require_ticket=True)) == []


# --- check_mfa_presence ------------------------------------------------------------------

MFA = {"method": "totp", "code": "123456"}


def test_mfa_evidence_is_required_when_the_policy_says_so():
    v = only(
        check_mfa_presence(a_request(mfa=None), ActivationSettings(require_mfa=True), eligible_facts(mfa_enrolled=True)),
        "mfa_required",
    )
    assert v.message.startswith("mfa:")


def test_mfa_evidence_from_someone_without_an_enrolled_method_is_refused():
    v = only(
        check_mfa_presence(a_request(mfa=MFA), ActivationSettings(require_mfa=True), eligible_facts(mfa_enrolled=False)),
        "mfa_not_enrolled",
    )
    assert v.message.startswith("mfa:")


def test_mfa_evidence_from_an_enrolled_user_passes_the_presence_check():
    assert check_mfa_presence(a_request(mfa=MFA), ActivationSettings(require_mfa=True), eligible_facts(mfa_enrolled=True)) == []


def test_no_mfa_check_when_the_policy_does_not_require_it():
    assert check_mfa_presence(a_request(mfa=None), ActivationSettings(), eligible_facts(mfa_enrolled=False)) == []


# --- check_approvers --------------------------------------------------------------------


def test_a_stage_needing_more_approvals_than_there_are_approvers_is_unsatisfiable():
    policy = a_policy(ApprovalStage(approvers=["bob"], required=2))
    v = only(check_approvers([["bob"]], policy), "approval_unsatisfiable")
    assert v.message.startswith("approval[0]:")
    assert "2" in v.message and "1" in v.message


def test_a_requester_who_is_the_only_approver_cannot_be_approved():
    # The requester is removed from the deciders, so nobody is left.
    policy = a_policy(ApprovalStage(approvers=["alice"]))
    v = only(check_approvers([[]], policy), "approval_unsatisfiable")
    assert v.message.startswith("approval[0]:")


def test_the_unsatisfiable_stage_is_named_by_its_index():
    policy = a_policy(ApprovalStage(approvers=["bob"]), ApprovalStage(approvers=["grp-secops"], required=3))
    v = only(check_approvers([["bob"], ["carol", "dave"]], policy), "approval_unsatisfiable")
    assert v.message.startswith("approval[1]:")


def test_stages_with_enough_approvers_are_satisfiable():
    policy = a_policy(ApprovalStage(approvers=["bob", "carol"], required=2), ApprovalStage(approvers=["grp-secops"]))
    assert check_approvers([["bob", "carol"], ["dave"]], policy) == []


def test_no_approval_stages_means_nothing_to_satisfy():
    assert check_approvers([], a_policy()) == []


# --- evaluate_request -------------------------------------------------------------------


def test_a_good_request_has_no_violations():
    assert evaluate_request(a_request(), REQUEST_ID, a_policy(), eligible_facts(), [], AT) == []


def test_a_bad_target_is_the_only_thing_reported():
    # Nothing else can be judged about a group that does not exist.
    request = a_request(duration=timedelta(hours=30), justification="n/a")
    facts = EligibilityFacts(group_exists=False, eligible_via=[], running_request_id="other")
    assert codes(evaluate_request(request, REQUEST_ID, a_policy(require_mfa=True), facts, [], AT)) == ["group_not_found"]


def test_every_other_violation_is_reported_together_in_a_stable_order():
    policy = a_policy(ApprovalStage(approvers=["bob"], required=2), require_ticket=True, require_mfa=True)
    facts = EligibilityFacts(eligible_via=[], running_request_id="activation/other", eligible_until=AT + timedelta(hours=1))
    request = a_request(duration=timedelta(hours=9), justification="n/a", ticket=None, mfa=None)
    assert codes(evaluate_request(request, REQUEST_ID, policy, facts, [["bob"]], AT)) == [
        "not_eligible",
        "already_active",
        "duration_exceeds_max",
        "eligibility_ends_first",
        "justification_placeholder",
        "ticket_required",
        "mfa_required",
        "approval_unsatisfiable",
    ]


def test_a_request_without_a_duration_is_judged_at_the_policy_maximum():
    # Eligibility ends in 7 hours: a request without a duration asks for 8.
    facts = eligible_facts(eligible_until=AT + timedelta(hours=7))
    assert codes(evaluate_request(a_request(duration=None), REQUEST_ID, a_policy(), facts, [], AT)) == ["eligibility_ends_first"]
    assert evaluate_request(a_request(duration=None), REQUEST_ID, a_policy(max_duration=timedelta(hours=6)), facts, [], AT) == []


def test_every_violation_message_names_a_field():
    policy = a_policy(ApprovalStage(approvers=["bob"], required=2), require_ticket=True, require_mfa=True)
    facts = EligibilityFacts(eligible_via=[], eligible_until=AT + timedelta(hours=1))
    request = a_request(duration=timedelta(hours=9), justification=None)
    fields = [v.message.split(":", 1)[0] for v in evaluate_request(request, REQUEST_ID, policy, facts, [["bob"]], AT)]
    assert fields == ["principal_id", "duration", "duration", "justification", "ticket", "mfa", "approval[0]"]


# --- refuse_review ------------------------------------------------------------------------


def a_stage(*decided: str) -> StageStatus:
    return StageStatus(
        approvers=["bob", "carol", "grp-secops"],
        required=2,
        decisions=[StageDecision(approver_id=who, decision=ReviewDecision.approve, justification="ok", at=AT) for who in decided],
    )


def review(**overrides) -> str | None:
    fields = {
        "approver_id": "bob",
        "decision": ReviewDecision.approve,
        "justification": "checked the incident",
        "requester_id": "alice",
        "stage": a_stage(),
        "deciders": ["bob", "carol", "dave"],
        "justification_required": True,
    }
    fields.update(overrides)
    return refuse_review(**fields)


def test_an_approver_of_the_current_stage_may_approve():
    assert review() is None


def test_an_approver_may_deny_too():
    assert review(decision=ReviewDecision.deny) is None


def test_a_review_when_nothing_is_pending_is_refused():
    assert "not pending" in review(stage=None)


def test_nobody_approves_their_own_request_even_if_listed_as_approver():
    reason = review(approver_id="alice", deciders=["alice", "bob"])
    assert reason is not None and "own request" in reason


def test_someone_who_is_not_an_approver_of_the_stage_is_refused():
    reason = review(approver_id="mallory")
    assert reason is not None and "mallory" in reason and "not an approver" in reason


def test_the_same_approver_counts_once():
    reason = review(approver_id="bob", stage=a_stage("bob"))
    assert reason is not None and "already decided" in reason
    assert review(approver_id="bob", decision=ReviewDecision.deny, stage=a_stage("bob")) is not None


def test_an_approver_of_an_earlier_stage_does_not_count_again():
    reason = review(approver_id="bob", decided_earlier=["bob"])
    assert reason is not None and "already decided" in reason
    assert review(approver_id="carol", decided_earlier=["bob"]) is None


def test_another_approver_may_still_decide_after_the_first():
    assert review(approver_id="carol", stage=a_stage("bob")) is None


@pytest.mark.parametrize("justification", [None, "", "   "])
def test_an_approver_must_justify_when_the_policy_requires_it(justification):
    reason = review(justification=justification)
    assert reason is not None and reason.startswith("justification:")


def test_an_approver_need_not_justify_when_the_policy_does_not_require_it():
    assert review(justification=None, justification_required=False) is None


# --- refuse_deactivation --------------------------------------------------------------------

GRANTED = AT


def deactivate(by: str, after: timedelta, administrators=("root",)) -> str | None:
    return refuse_deactivation(
        by=by, requester_id="alice", administrators=list(administrators), granted_at=GRANTED, at=GRANTED + after
    )


@pytest.mark.parametrize("after", [timedelta(0), timedelta(minutes=1), timedelta(minutes=4, seconds=59)])
def test_the_requester_cannot_deactivate_in_the_first_five_minutes(after):
    reason = deactivate("alice", after)
    assert reason is not None and "5 minutes" in reason


def test_an_administrator_may_deactivate_at_once():
    assert deactivate("root", timedelta(minutes=1)) is None


def test_a_requester_who_is_an_administrator_may_deactivate_at_once():
    assert deactivate("alice", timedelta(seconds=10), administrators=["alice"]) is None


@pytest.mark.parametrize("after", [timedelta(minutes=1), timedelta(hours=1)])
def test_someone_else_may_not_deactivate(after):
    reason = deactivate("mallory", after)
    assert reason is not None and "mallory" in reason


@pytest.mark.parametrize("after", [EARLY_DEACTIVATION_WINDOW, timedelta(minutes=5), timedelta(hours=1)])
def test_the_requester_may_deactivate_after_five_minutes(after):
    assert deactivate("alice", after) is None


# --- refuse_cancel ----------------------------------------------------------------------------


def test_the_requester_may_cancel():
    assert refuse_cancel(by="alice", requester_id="alice", administrators=[]) is None


def test_an_administrator_may_cancel_anyones_request():
    assert refuse_cancel(by="root", requester_id="alice", administrators=["root"]) is None


def test_someone_else_may_not_cancel():
    reason = refuse_cancel(by="mallory", requester_id="alice", administrators=["root"])
    assert reason is not None and "mallory" in reason


# --- refuse_extension -------------------------------------------------------------------------


def extend(
    by: str = "alice",
    extra: timedelta = timedelta(hours=1),
    justification: str | None = "the migration runs late",
    approvers=("bob",),
    administrators=("root",),
    settings: ActivationSettings | None = None,
    active_for: timedelta = timedelta(hours=2),
) -> str | None:
    return refuse_extension(
        by=by,
        extra=extra,
        justification=justification,
        requester_id="alice",
        approvers=list(approvers),
        administrators=list(administrators),
        settings=settings or ActivationSettings(),
        granted_at=GRANTED,
        expires_at=GRANTED + active_for,
    )


def test_the_requester_may_extend_within_the_maximum():
    assert extend() is None


def test_the_requester_may_extend_up_to_exactly_the_maximum():
    assert extend(extra=timedelta(hours=6)) is None


def test_the_requester_may_not_extend_beyond_the_maximum():
    reason = extend(extra=timedelta(hours=7))
    assert reason is not None and reason.startswith("duration:")
    assert "PT9H" in reason and "PT8H" in reason


def test_an_approver_who_is_not_the_requester_may_extend_beyond_the_maximum():
    assert extend(by="bob", extra=timedelta(hours=7)) is None


def test_a_requester_listed_as_approver_is_still_capped():
    reason = extend(by="alice", extra=timedelta(hours=7), approvers=["alice", "bob"])
    assert reason is not None and reason.startswith("duration:")


def test_a_stranger_may_not_extend():
    reason = extend(by="mallory")
    assert reason is not None and "mallory" in reason


@pytest.mark.parametrize("justification", [None, "", "  "])
def test_an_extension_needs_a_justification_when_the_policy_requires_one(justification):
    reason = extend(justification=justification)
    assert reason is not None and reason.startswith("justification:")


def test_an_extension_needs_no_justification_when_the_policy_does_not_require_one():
    assert extend(justification=None, settings=ActivationSettings(require_justification=False)) is None


# --- properties -------------------------------------------------------------------------------

MINUTE = 60


@st.composite
def settings_and_bounds(draw):
    max_s = draw(st.integers(30 * MINUTE, 24 * 60 * MINUTE))
    min_s = draw(st.integers(5 * MINUTE, max_s))
    return ActivationSettings(max_duration=timedelta(seconds=max_s), min_duration=timedelta(seconds=min_s))


@given(settings_and_bounds(), st.floats(0, 1))
def test_any_duration_between_min_and_max_is_allowed(settings, fraction):
    span = settings.max_duration - settings.min_duration
    duration = settings.min_duration + span * fraction
    assert check_duration(duration, settings) == []


@given(settings_and_bounds(), st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=30)))
def test_any_duration_above_the_max_is_refused(settings, over):
    violations = check_duration(settings.max_duration + over, settings)
    assert codes(violations) == ["duration_exceeds_max"]
    assert violations[0].message.startswith("duration:")


@given(settings_and_bounds(), st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(minutes=5)))
def test_any_duration_below_the_min_is_refused(settings, under):
    assert codes(check_duration(settings.min_duration - under, settings)) == ["duration_too_short"]


def test_an_administrator_may_extend_someone_else_within_the_maximum():
    assert extend(by="root") is None


def test_an_administrator_who_is_not_an_approver_stays_within_the_maximum():
    reason = extend(by="root", extra=timedelta(hours=7))
    assert reason is not None and reason.startswith("duration:")


def test_a_fraction_of_a_second_over_the_maximum_is_shown():
    violations = check_duration(timedelta(hours=8, milliseconds=500), ActivationSettings())
    assert "PT8H0.5S" in violations[0].message
