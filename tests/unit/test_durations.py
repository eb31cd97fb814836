"""One way to write a duration: ISO 8601 with days and time only, in payloads,
the store, messages and the command line alike."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from pim.domain.durations import describe_duration, format_duration, parse_duration
from pim.domain.models import AccessType, ActivationRequest, Extend
from pim.domain.policy import Policy

TIMEDELTA = TypeAdapter(timedelta)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3660)))
def test_every_written_duration_reads_back_as_the_same_duration(duration):
    text = format_duration(duration)
    assert text.startswith("P") and "Y" not in text and "W" not in text
    assert TIMEDELTA.validate_python(text) == duration


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(minutes=5), "PT5M"),
        (timedelta(hours=8), "PT8H"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(days=1, seconds=1), "P1DT1S"),
        (timedelta(seconds=1.5), "PT1.5S"),
        (timedelta(days=365), "P365D"),
        (timedelta(days=3660), "P3660D"),
    ],
)
def test_durations_read_like_the_spec(duration, text):
    assert format_duration(duration) == text


def test_payloads_write_durations_in_days_never_in_years():
    request = ActivationRequest(group_id="grp-ops", access=AccessType.member, principal_id="alice", duration=timedelta(hours=2))
    assert json.loads(request.model_dump_json())["duration"] == "PT2H"
    extend = Extend(by="bob", duration=timedelta(days=3660))
    assert json.loads(extend.model_dump_json())["duration"] == "P3660D"
    policy = Policy().model_dump(mode="json")
    assert policy["eligible_assignment"]["max_duration"] == "P365D"
    assert policy["activation"]["max_duration"] == "PT8H"


def test_a_policy_written_with_years_still_reads():
    dumped = Policy().model_dump(mode="json")
    dumped["eligible_assignment"]["max_duration"] = "P1Y"
    assert Policy.model_validate(dumped).eligible_assignment.max_duration == timedelta(days=365)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2h", timedelta(hours=2)), ("1h30m", timedelta(minutes=90)), ("1d", timedelta(days=1)), ("PT45M", timedelta(minutes=45))],
)
def test_people_type_durations_short_or_in_iso(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0m", "-PT1H", "soon", "P3661D", "9" * 5000 + "h"])
def test_durations_that_are_not_positive_or_too_long_are_refused_naming_the_field(text):
    with pytest.raises(ValueError, match=r"^--for: "):
        parse_duration(text, "--for")


def test_people_read_durations_in_words():
    assert describe_duration(timedelta(hours=1, minutes=30)) == "1 h 30 min"
    assert describe_duration(timedelta(days=2, seconds=5)) == "2 d 5 s"
