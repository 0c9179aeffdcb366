"""Tokyo Stock Exchange trading days (XTKS calendar of exchange-calendars)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

XTKS = "XTKS"
TIMEZONE = "Asia/Tokyo"  # the exchange's: a trading date is a date in Tokyo


@lru_cache(maxsize=1)
def _calendar() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(XTKS)


def trading_days(start: date, end: date) -> list[date]:
    """XTKS sessions in [start, end] (holidays and the 2020-10-01 outage excluded)."""
    cal = _calendar()
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = min(pd.Timestamp(end), cal.last_session)
    if lo > hi:
        return []
    return [d.date() for d in cal.sessions_in_range(lo, hi)]


def trading_days_from(start: date, n: int) -> list[date]:
    """The first ``n`` XTKS sessions on or after ``start``."""
    if n <= 0:
        return []
    cal = _calendar()
    first = cal.date_to_session(pd.Timestamp(start), direction="next")
    days = cal.sessions_window(first, n)
    if len(days) < n:  # pragma: no cover - calendar horizon
        raise ValueError(f"XTKS calendar ends before {n} sessions after {start}")
    return [d.date() for d in days]


def is_trading_day(day: date) -> bool:
    return _calendar().is_session(pd.Timestamp(day))


def next_trading_day(day: date) -> date:
    return _calendar().next_session(_calendar().date_to_session(pd.Timestamp(day), "previous")).date()


def weekday_holidays(start: date, end: date) -> list[date]:
    """Weekdays in [start, end] on which XTKS does not trade (used to build Dagster partitions)."""
    sessions = set(trading_days(start, end))
    out: list[date] = []
    d = start
    while d <= end:
        if d.weekday() < 5 and d not in sessions:
            out.append(d)
        d += timedelta(days=1)
    return out


def calendar_horizon() -> date:
    """Last date the XTKS calendar knows."""
    return _calendar().last_session.date()


def to_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
