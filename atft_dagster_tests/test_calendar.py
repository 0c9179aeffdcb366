from datetime import date

from atft_dagster.calendar import is_trading_day, trading_days, trading_days_from, weekday_holidays


def test_xtks_excludes_holidays_weekends_and_the_2020_outage():
    days = trading_days(date(2020, 9, 28), date(2020, 10, 5))
    assert date(2020, 10, 1) not in days  # arrowhead outage
    assert date(2020, 10, 2) in days
    assert all(d.weekday() < 5 for d in days)
    assert not is_trading_day(date(2024, 1, 1)) and not is_trading_day(
        date(2024, 1, 8)
    )  # new year, coming-of-age
    assert is_trading_day(date(2024, 1, 9))


def test_trading_days_from_counts_sessions():
    days = trading_days_from(date(2024, 1, 1), 5)
    assert days == [
        date(2024, 1, 4),
        date(2024, 1, 5),
        date(2024, 1, 9),
        date(2024, 1, 10),
        date(2024, 1, 11),
    ]


def test_weekday_holidays_are_exactly_the_non_sessions():
    hol = weekday_holidays(date(2024, 1, 1), date(2024, 1, 31))
    assert hol == [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 8)]
