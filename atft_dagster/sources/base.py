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
