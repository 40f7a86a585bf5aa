"""The SLA business clock and the verdict on a ticket: pure arithmetic, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ticketing.sla.clock import BusinessClock, NoBusinessHours
from ticketing.sla.schemas import BusinessHours, SlaPolicy, default_policy
from ticketing.sla.service import Clocks, rules_for
from ticketing.sla.service import evaluate as evaluate_sla
from ticketing.vocabulary import Priority, SlaStatus, TicketStatus

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_9_17 = [{"day": d, "start": "09:00", "end": "17:00"} for d in range(5)]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def office(holidays: tuple[date, ...] = ()) -> BusinessClock:
    return BusinessClock(WEEKDAYS_9_17, "Europe/Berlin", holidays)


def test_filed_friday_evening_counts_from_monday_morning():
    friday_evening = berlin(2026, 11, 27, 18, 30)
    assert office().add(friday_evening, 60) == berlin(2026, 11, 30, 10, 0)
    assert office().minutes_between(friday_evening, berlin(2026, 11, 30, 10, 0)) == 60


def test_filed_inside_hours_runs_over_into_the_next_day():
    assert office().add(berlin(2026, 11, 25, 16, 0), 120) == berlin(2026, 11, 26, 10, 0)
    assert office().add(berlin(2026, 11, 25, 10, 15), 30) == berlin(2026, 11, 25, 10, 45)


def test_filed_before_hours_starts_at_opening():
    assert office().add(berlin(2026, 11, 25, 6, 0), 15) == berlin(2026, 11, 25, 9, 15)


def test_march_dst_switch_keeps_local_office_hours():
    # Berlin moves from UTC+1 to UTC+2 on Sunday 29 March 2026.
    due = office().add(berlin(2026, 3, 27, 16, 0), 120)
    assert due == berlin(2026, 3, 30, 10, 0)
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # an hour earlier in UTC than Friday


def test_october_dst_switch_keeps_local_office_hours():
    # Back from UTC+2 to UTC+1 on Sunday 25 October 2026.
    due = office().add(berlin(2026, 10, 23, 16, 30), 60)
    assert due == berlin(2026, 10, 26, 9, 30) == datetime(2026, 10, 26, 8, 30, tzinfo=UTC)


def test_round_the_clock_across_dst_counts_real_minutes():
    always = BusinessClock()
    start = berlin(2026, 10, 24, 12, 0)
    # 24 hours of real time later the wall clock of Berlin shows an hour less.
    assert always.add(start, 24 * 60) == berlin(2026, 10, 25, 11, 0)
    assert always.minutes_between(start, start + timedelta(hours=3)) == 180


def test_night_hours_on_the_day_of_the_switch_are_an_hour_shorter():
    # A shift 00:00-06:00 local on Sunday 29 March 2026 has only 5 real hours (02:00 is skipped).
    night = BusinessClock([{"day": 6, "start": "00:00", "end": "06:00"}], "Europe/Berlin")
    assert night.minutes_between(berlin(2026, 3, 28, 23, 0), berlin(2026, 3, 29, 7, 0)) == 300


def test_holidays_have_no_hours():
    christmas = office((date(2026, 12, 24), date(2026, 12, 25)))
    # Wednesday 23 Dec, one hour before closing: 2 hours more runs to Monday 28 Dec 10:00.
    assert christmas.add(berlin(2026, 12, 23, 16, 0), 120) == berlin(2026, 12, 28, 10, 0)
    assert christmas.minutes_between(berlin(2026, 12, 23, 0, 0), berlin(2026, 12, 29, 0, 0)) == (
        2 * 8 * 60
    )


def test_filed_on_a_holiday_counts_from_the_next_working_day():
    clock = office((date(2026, 5, 1),))  # Friday 1 May
    assert clock.add(berlin(2026, 5, 1, 11, 0), 30) == berlin(2026, 5, 4, 9, 30)


def test_a_target_longer_than_a_week():
    # 10,080 minutes (the default "low" resolution) is 21 working days of 8 hours.
    clock = office((date(2026, 12, 25),))
    due = clock.add(berlin(2026, 11, 30, 9, 0), 10080)
    assert due == berlin(2026, 12, 29, 17, 0)
    assert clock.minutes_between(berlin(2026, 11, 30, 9, 0), due) == 10080
    # And a very long one, beyond the first stretch of the clock's table: a year of hours.
    year = 52 * 5 * 8 * 60
    far = office().add(berlin(2026, 1, 5, 9, 0), year)
    assert office().minutes_between(berlin(2026, 1, 5, 9, 0), far) == year


def test_add_and_between_agree_at_every_quarter_hour_of_a_week():
    clock = office()
    start = berlin(2026, 3, 23, 0, 0)
    for step in range(0, 7 * 24 * 4, 5):
        moment = start + timedelta(minutes=15 * step)
        due = clock.add(moment, 137)
        assert clock.minutes_between(moment, due) == 137


def test_hours_that_never_come_fail_clearly():
    only_monday = BusinessClock([{"day": 0, "start": "09:00", "end": "10:00"}], "UTC")
    assert only_monday.add(datetime(2026, 1, 1, tzinfo=UTC), 60) == datetime(
        2026, 1, 5, 10, 0, tzinfo=UTC
    )
    mondays = frozenset(
        date(2026, 1, 5) + timedelta(weeks=w) for w in range(0, 52 * 40)
    )  # every Monday for 40 years
    never = BusinessClock([{"day": 0, "start": "09:00", "end": "10:00"}], "UTC", mondays)
    with pytest.raises(NoBusinessHours):
        never.add(datetime(2026, 1, 1, tzinfo=UTC), 60)


# ---- the verdict on one ticket --------------------------------------------------------------

CREATED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RULES = rules_for(default_policy())  # urgent: response 60, resolution 240; ratio 0.8


def clocks(**changes: object) -> Clocks:
    values: dict[str, object] = {
        "priority": Priority.urgent,
        "status": TicketStatus.open,
        "created_at": CREATED,
        "first_responded_at": None,
        "resolved_at": None,
        "paused_at": None,
        "paused_seconds": 0,
    }
    values.update(changes)
    return Clocks(**values)  # type: ignore[arg-type]


def at(minutes: float) -> datetime:
    return CREATED + timedelta(minutes=minutes)


def test_due_times_and_status_over_time():
    fresh = evaluate_sla(RULES, clocks(), at(10))
    assert fresh.first_response_due_at == at(60)
    assert fresh.resolution_due_at == at(240)
    assert fresh.status == SlaStatus.on_track
    assert fresh.next_due_at == at(60)
    assert fresh.next_check_at == at(48)  # 80 % of the response target
    assert fresh.alerts == ()

    risky = evaluate_sla(RULES, clocks(), at(50))
    assert risky.status == SlaStatus.at_risk
    assert [(a.target, a.kind) for a in risky.alerts] == [("first_response", "warning")]

    late = evaluate_sla(RULES, clocks(response_warned=True), at(61))
    assert late.status == SlaStatus.breached
    assert [(a.target, a.kind) for a in late.alerts] == [("first_response", "breach")]

    raised = evaluate_sla(RULES, clocks(response_warned=True, response_breached=True), at(61))
    assert raised.alerts == () and raised.status == SlaStatus.breached
    assert raised.next_check_at == at(192)  # the resolution warning comes next


def test_no_priority_or_no_policy_for_it_means_no_sla():
    assert evaluate_sla(RULES, clocks(priority=None), at(1)).status is None
    only_urgent = default_policy().model_copy(
        update={"policies": {Priority.urgent: default_policy().policies[Priority.urgent]}}
    )
    verdict = evaluate_sla(rules_for(only_urgent), clocks(priority=Priority.low), at(1))
    assert verdict.status is None and verdict.first_response_due_at is None


def test_response_in_time_then_resolution_met():
    answered = clocks(first_responded_at=at(30))
    assert evaluate_sla(RULES, answered, at(100)).next_due_at == at(240)
    done = clocks(
        first_responded_at=at(30),
        status=TicketStatus.resolved,
        resolved_at=at(200),
        paused_at=at(200),
    )
    verdict = evaluate_sla(RULES, done, at(300))
    assert verdict.status == SlaStatus.met
    assert verdict.next_due_at is None and verdict.next_check_at is None and verdict.alerts == ()


def test_waiting_stops_the_resolution_clock():
    waiting = clocks(first_responded_at=at(5), status=TicketStatus.waiting, paused_at=at(100))
    verdict = evaluate_sla(RULES, waiting, at(1000))  # long past 240 minutes
    assert verdict.status == SlaStatus.on_track
    assert verdict.next_due_at is None and verdict.next_check_at is None
    # Back to open after 900 paused minutes: the due time moved out by them.
    resumed = clocks(first_responded_at=at(5), paused_seconds=900 * 60)
    verdict = evaluate_sla(RULES, resumed, at(1000))
    assert verdict.resolution_due_at == at(240 + 900)
    assert verdict.status == SlaStatus.on_track


def test_business_hours_policy_counts_only_office_time():
    policy = SlaPolicy(
        policies=default_policy().policies,
        business_hours=BusinessHours.model_validate(
            {"timezone": "Europe/Berlin", "days": WEEKDAYS_9_17}
        ),
        holidays=[date(2026, 11, 30)],
    )
    friday_evening = berlin(2026, 11, 27, 18, 30)
    verdict = evaluate_sla(rules_for(policy), clocks(created_at=friday_evening), friday_evening)
    # Monday 30 Nov is a holiday: the hour runs on Tuesday morning.
    assert verdict.first_response_due_at == berlin(2026, 12, 1, 10, 0)
    assert verdict.status == SlaStatus.on_track
