"""Calendar arithmetic as the law counts it (DESIGN.md, Time; rules/periods.py)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kodex.errors import InvalidPeriod
from kodex.rules.periods import Period, add_period, age_on, end_of_year

ONE_DAY = timedelta(days=1)
PRAGUE = ZoneInfo("Europe/Prague")

days = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
month_counts = st.integers(min_value=0, max_value=1200)
year_counts = st.integers(min_value=0, max_value=100)
leap_days = st.sampled_from([y for y in range(1904, 2200, 4) if calendar.isleap(y)]).map(lambda y: date(y, 2, 29))
births = days | leap_days  # 29 February is rare among random days; draw it on purpose


# ---------------------------------------------------------------- adding periods


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        pytest.param(
            date(2023, 1, 31), Period(months=1), date(2023, 2, 28), id="31 Jan 2023 + 1 month is 28 Feb (common year)"
        ),
        pytest.param(
            date(2024, 1, 31), Period(months=1), date(2024, 2, 29), id="31 Jan 2024 + 1 month is 29 Feb (leap year)"
        ),
        pytest.param(date(2024, 3, 31), Period(months=1), date(2024, 4, 30), id="31 Mar + 1 month is 30 Apr"),
        pytest.param(date(2024, 2, 29), Period(years=1), date(2025, 2, 28), id="29 Feb 2024 + 1 year is 28 Feb 2025"),
        pytest.param(date(2024, 2, 29), Period(years=4), date(2028, 2, 29), id="29 Feb 2024 + 4 years is 29 Feb 2028"),
        pytest.param(date(2025, 12, 31), Period(days=1), date(2026, 1, 1), id="31 Dec 2025 + 1 day is 1 Jan 2026"),
        pytest.param(
            date(2025, 12, 31), Period(months=1), date(2026, 1, 31), id="31 Dec 2025 + 1 month is 31 Jan 2026"
        ),
        pytest.param(
            date(2024, 11, 21), Period(months=24), date(2026, 11, 21), id="21 Nov 2024 + 24 months is 21 Nov 2026"
        ),
        pytest.param(
            date(2020, 12, 31), Period(years=5), date(2025, 12, 31), id="31 Dec 2020 + 5 years is 31 Dec 2025"
        ),
        pytest.param(
            date(2025, 3, 31), -Period(months=1), date(2025, 2, 28), id="31 Mar 2025 - 1 month is 28 Feb 2025"
        ),
        pytest.param(date(2025, 3, 1), -Period(days=1), date(2025, 2, 28), id="1 Mar 2025 - 1 day is 28 Feb 2025"),
    ],
)
def test_calendar_period_added_to_a_day_lands_on_the_day_the_law_counts(start: date, period: Period, expected: date):
    assert add_period(start, period) == expected


def test_one_year_registration_from_29_february_ends_on_27_february():
    """kntb 4.1: renewed_at + 1 year - 1 day; 29 Feb 2024 + 1 year is 28 Feb 2025, so the last valid day is 27 Feb."""
    renewed_at = date(2024, 2, 29)
    assert add_period(add_period(renewed_at, Period(years=1)), -Period(days=1)) == date(2025, 2, 27)


def test_camera_recording_kept_7_days_is_counted_to_the_second():
    end = datetime(2026, 11, 10, 11, 0, tzinfo=PRAGUE)
    assert add_period(end, Period(days=7)) == datetime(2026, 11, 17, 11, 0, tzinfo=PRAGUE)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2025, 3, 10), date(2025, 12, 31), id="renewed in March lapses after 31 Dec of that year"),
        pytest.param(date(2025, 12, 31), date(2025, 12, 31), id="31 Dec is its own year end"),
        pytest.param(date(2024, 1, 1), date(2024, 12, 31), id="1 Jan belongs to the year it starts"),
    ],
)
def test_end_of_year_is_31_december_of_the_same_year(day: date, expected: date):
    assert end_of_year(day) == expected


def test_day_after_end_of_year_is_1_january_of_the_next_year():
    assert add_period(end_of_year(date(2025, 3, 10)), Period(days=1)) == date(2026, 1, 1)


# ---------------------------------------------------------------- writing periods


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1 year", Period(years=1), id="1 year"),
        pytest.param("5 years", Period(years=5), id="5 years"),
        pytest.param("24 months", Period(months=24), id="24 months"),
        pytest.param("1 month", Period(months=1), id="1 month"),
        pytest.param("7 days", Period(days=7), id="7 days"),
        pytest.param("1 day", Period(days=1), id="1 day"),
    ],
)
def test_period_written_as_the_law_writes_it_is_accepted(text: str, expected: Period):
    period = Period.parse(text)
    assert period == expected
    assert str(period) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("24 monts", id="misspelt unit"),
        pytest.param("-1 year", id="negative count"),
        pytest.param("1.5 years", id="fractional count"),
        pytest.param("", id="empty"),
        pytest.param("months", id="unit without a count"),
        pytest.param("24", id="count without a unit"),
        pytest.param("1 fortnight", id="unit the law does not use"),
    ],
)
def test_period_not_written_as_whole_days_months_or_years_is_rejected(text: str):
    with pytest.raises(InvalidPeriod) as raised:
        Period.parse(text)
    assert repr(text) in str(raised.value)


# ---------------------------------------------------------------- age


@pytest.mark.parametrize(
    ("born", "day", "age"),
    [
        pytest.param(date(1990, 6, 15), date(2026, 6, 14), 35, id="35 the day before the 36th birthday"),
        pytest.param(date(1990, 6, 15), date(2026, 11, 22), 36, id="completed years after the birthday"),
        pytest.param(date(2011, 11, 22), date(2026, 11, 21), 14, id="14 the day before the 15th birthday"),
        pytest.param(date(2011, 11, 22), date(2026, 11, 22), 15, id="15 on the 15th birthday"),
        pytest.param(date(2012, 2, 29), date(2027, 2, 27), 14, id="born 29 Feb: 14 on 27 Feb of a common year"),
        pytest.param(date(2012, 2, 29), date(2027, 2, 28), 15, id="born 29 Feb: 15 on 28 Feb of a common year"),
        pytest.param(date(2012, 2, 29), date(2028, 2, 28), 15, id="born 29 Feb: not yet 16 on 28 Feb of a leap year"),
        pytest.param(date(2012, 2, 29), date(2028, 2, 29), 16, id="born 29 Feb: 16 on 29 Feb of a leap year"),
        pytest.param(date(2012, 2, 29), date(2027, 3, 1), 15, id="born 29 Feb: still 15 on 1 Mar of a common year"),
        pytest.param(date(2026, 11, 22), date(2026, 11, 22), 0, id="0 on the day of birth"),
    ],
)
def test_age_is_completed_years_counted_from_the_birthday(born: date, day: date, age: int):
    assert age_on(born, day) == age


# ---------------------------------------------------------------- properties


@given(day=days, months=month_counts)
def test_adding_months_keeps_the_day_of_month_unless_the_target_month_is_shorter(day: date, months: int):
    result = add_period(day, Period(months=months))
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    assert (result.year, result.month) == (year, month0 + 1)
    last = calendar.monthrange(result.year, result.month)[1]
    assert result.day == (day.day if day.day <= last else last)


@given(first=days, second=days, months=month_counts)
def test_adding_months_is_monotonic_in_the_day(first: date, second: date, months: int):
    earlier, later = sorted((first, second))
    assert add_period(earlier, Period(months=months)) <= add_period(later, Period(months=months))


@given(day=days, years=year_counts)
def test_adding_12_months_equals_adding_1_year(day: date, years: int):
    assert add_period(day, Period(months=12 * years)) == add_period(day, Period(years=years))


@given(
    born=births,
    since_birth=st.integers(min_value=0, max_value=120 * 366),
    later_by=st.integers(min_value=0, max_value=120 * 366),
)
def test_age_never_decreases_as_days_pass(born: date, since_birth: int, later_by: int):
    earlier = born + timedelta(days=since_birth)
    later = earlier + timedelta(days=later_by)
    assert age_on(born, earlier) <= age_on(born, later)


@given(born=births, years=st.integers(min_value=1, max_value=100))
def test_age_reaches_n_on_the_nth_birthday_and_not_the_day_before(born: date, years: int):
    birthday = add_period(born, Period(years=years))
    assert age_on(born, birthday) == years
    assert age_on(born, birthday - ONE_DAY) == years - 1


@given(
    born=births,
    years=st.integers(min_value=0, max_value=100),
    shift=st.integers(min_value=-3, max_value=3) | st.integers(min_value=-366, max_value=366),
)
def test_age_increases_by_exactly_one_on_each_birthday_and_on_no_other_day(born: date, years: int, shift: int):
    day = add_period(born, Period(years=years)) + timedelta(days=shift)
    assume(day > born)
    is_birthday = day == add_period(born, Period(years=day.year - born.year))
    assert age_on(born, day) - age_on(born, day - ONE_DAY) == (1 if is_birthday else 0)
