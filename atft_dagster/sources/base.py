"""The market-data source interface. Every implementation yields the canonical schema."""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

import polars as pl


@runtime_checkable
class MarketSource(Protocol):
    """Where market data comes from: the synthetic market, the J-Quants API or a landing directory."""

    name: str

    def daily_quotes(self, start: date, end: date) -> pl.DataFrame:
        """Canonical :class:`~atft_dagster.sources.schema.DailyQuotes` for trading days in [start, end]."""
        ...

    def sector_master(self, as_of: date) -> pl.DataFrame:
        """Canonical :class:`~atft_dagster.sources.schema.SectorMaster` known up to ``as_of``."""
        ...

    def topix(self, start: date, end: date) -> pl.DataFrame:
        """Canonical :class:`~atft_dagster.sources.schema.IndexBars` of TOPIX."""
        ...

    def calendar(self, start: date, end: date) -> pl.DataFrame:
        """Canonical :class:`~atft_dagster.sources.schema.TradingCalendar` for every date in [start, end]."""
        ...


def calendar_frame(start: date, end: date, sessions: list[date]) -> pl.DataFrame:
    """A canonical calendar (every calendar day, flagged) from a list of sessions."""
    days = pl.date_range(start, end, "1d", eager=True).alias("date")
    return pl.DataFrame({"date": days}).with_columns(pl.col("date").is_in(sessions).alias("is_trading_day"))


def adjust_point_in_time(quotes: pl.DataFrame) -> pl.DataFrame:
    """Split-continuous prices on the basis of each code's first row: price / prod(adj_factor up to t).

    Unlike the latest-basis adjustment J-Quants publishes, the value at t depends only on data up to t.
    """
    cum = pl.col("adj_factor").cum_prod().over("code", order_by="date")
    return quotes.with_columns(
        *[(pl.col(c) / cum).alias(f"adj_{c}") for c in ("open", "high", "low", "close")],
        (pl.col("volume") * cum).alias("adj_volume"),
    )


def equal_weighted_index(quotes: pl.DataFrame) -> pl.DataFrame:
    """Index bars derived from stock quotes, for sources without a TOPIX series: level 100 before the
    first session, then each session's equal-weighted mean of the point-in-time adjusted close-to-close
    returns of the stocks quoted on that session and their previous one (open = high = low = close)."""
    q = adjust_point_in_time(quotes.sort("code", "date"))
    r = q.with_columns((pl.col("adj_close") / pl.col("adj_close").shift(1).over("code") - 1).alias("_r"))
    daily = r.group_by("date").agg(pl.col("_r").drop_nulls().mean().fill_null(0.0)).sort("date")
    level = (100.0 * (1.0 + daily["_r"]).cum_prod()).alias("close")
    return daily.select("date").with_columns(
        level.alias("open"), level.alias("high"), level.alias("low"), level
    )


class MissingSourceData(ValueError):
    pass


def require_days(frame: pl.DataFrame, days: list[date], what: str) -> None:
    """Every requested trading day must have rows in ``frame`` (a source that lacks a day fails, naming it)."""
    have = set(frame["date"].unique().to_list())
    lacking = [d for d in days if d not in have]
    if lacking:
        raise MissingSourceData(
            f"{what} has no rows for {len(lacking)} requested trading day(s): {[str(d) for d in lacking[:5]]}"
        )


def has_quotes(source: MarketSource, day: date) -> bool:
    """Whether ``source`` can deliver quotes for ``day`` now (a file landed, the API published it)."""
    return not source.daily_quotes(day, day).is_empty()
