"""Daily partitions over XTKS trading days (Asia/Tokyo); holidays are excluded, not empty."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

from atft_dagster.calendar import calendar_horizon, weekday_holidays

DEFAULT_HISTORY_START = date(2022, 1, 4)
TIMEZONE = "Asia/Tokyo"
FMT = "%Y-%m-%d"


def trading_day_partitions(start: date = DEFAULT_HISTORY_START) -> dg.TimeWindowPartitionsDefinition:
    holidays = weekday_holidays(start, calendar_horizon())
    return dg.TimeWindowPartitionsDefinition(
        start=start.strftime(FMT),
        fmt=FMT,
        cron_schedule="0 0 * * 1-5",
        timezone=TIMEZONE,
        end_offset=1,  # today's partition exists from midnight Tokyo: the nightly run ingests the same day
        exclusions=[datetime(d.year, d.month, d.day) for d in holidays],
    )


trading_days_partitions = trading_day_partitions()


def partition_date(key: str) -> date:
    return date.fromisoformat(key)
