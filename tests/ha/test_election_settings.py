"""Election settings are checked as a whole; MicroTime is formatted the way an API server wants."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtm.config.model import LeaseConfig
from gtm.ha import ElectionSettings, format_micro_time, parse_micro_time


def test_defaults_follow_the_config_and_time_out_inside_the_retry_period() -> None:
    settings = ElectionSettings("dc1-a")
    assert (settings.duration, settings.renew_deadline, settings.retry_period) == (15, 10, 2)
    assert 0 < settings.timeout < settings.retry_period


def test_from_config_reads_the_lease_timings() -> None:
    config = LeaseConfig(duration="30s", renew_deadline="20s", retry_period="3s")
    settings = ElectionSettings.from_config(config, identity="dc1-b", address="http://b:8080")
    assert settings == ElectionSettings("dc1-b", "http://b:8080", 30.0, 20.0, 3.0)


@pytest.mark.parametrize(
    ("timings", "message"),
    [
        (
            {"duration": 10, "renew_deadline": 10},
            r"renew_deadline \(10s\) must be shorter than duration \(10s\)",
        ),
        (
            {"duration": 10, "renew_deadline": 12},
            "a leader must stop acting before another can take the lease",
        ),
        (
            {"renew_deadline": 2, "retry_period": 2},
            r"retry_period \(2s\) must be shorter than renew_deadline",
        ),
        (
            {"retry_period": 2, "call_timeout": 2},
            r"call_timeout \(2s\) must be > 0 and shorter than retry_period",
        ),
        ({"duration": 0}, "duration must be > 0 seconds"),
    ],
)
def test_unsafe_timings_are_refused_with_the_rule_and_the_numbers(
    timings: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ElectionSettings("dc1-a", **timings)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as error:
        ElectionSettings(" ", duration=5, renew_deadline=5, retry_period=6)
    text = str(error.value)
    assert text.startswith("invalid election settings: ")
    assert "identity must not be empty" in text
    assert "renew_deadline (5s)" in text and "retry_period (6s)" in text


def test_a_config_with_an_unsafe_order_is_refused() -> None:
    config = LeaseConfig(duration="10s", renew_deadline="15s", retry_period="2s")
    with pytest.raises(ValueError, match="renew_deadline"):
        ElectionSettings.from_config(config, identity="dc1-a")


def test_micro_time_has_six_digits_and_z_even_on_a_whole_second() -> None:
    moment = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert format_micro_time(moment) == "2026-11-24T10:00:00.000000Z"
    cet = timezone(timedelta(hours=1))
    assert format_micro_time(datetime(2026, 11, 24, 11, 0, 0, 5, tzinfo=cet)) == (
        "2026-11-24T10:00:00.000005Z"
    )


def test_micro_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_micro_time(datetime(2026, 11, 24, 10, 0))


def test_parsing_accepts_rfc3339_and_gives_aware_utc() -> None:
    assert parse_micro_time("2026-11-24T10:00:00Z") == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert parse_micro_time("2026-11-24T11:00:00.5+01:00").tzinfo is UTC
    with pytest.raises(ValueError):
        parse_micro_time("2026-11-24T10:00:00")


@given(st.datetimes(timezones=st.just(UTC)))
def test_micro_time_round_trips(moment: datetime) -> None:
    text = format_micro_time(moment)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert parse_micro_time(text) == moment
