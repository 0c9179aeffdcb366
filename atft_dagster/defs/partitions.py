"""Daily partitions over XTKS trading days (Asia/Tokyo); holidays are excluded, not empty."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

from atft_dagster.calendar import TIMEZONE, calendar_horizon, weekday_holidays
from atft_dagster.defs.settings import history_start

FMT = "%Y-%m-%d"
__all__ = ["TIMEZONE", "partition_date", "trading_day_partitions", "trading_days_partitions"]


def trading_day_partitions(start: date) -> dg.TimeWindowPartitionsDefinition:
    """One partition per XTKS session from ``start`` (the first session on or after it)."""
    holidays = weekday_holidays(start, calendar_horizon())
    return dg.TimeWindowPartitionsDefinition(
        start=start.strftime(FMT),
        fmt=FMT,
        cron_schedule="0 0 * * 1-5",
        timezone=TIMEZONE,
        end_offset=1,  # today's partition exists from midnight Tokyo: the nightly run ingests the same day
        exclusions=[datetime(d.year, d.month, d.day) for d in holidays],
    )


trading_days_partitions = trading_day_partitions(history_start())


def partition_date(key: str) -> date:
    return date.fromisoformat(key)
