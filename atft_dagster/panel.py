"""The market panel: one adjusted (date, code) table that everything downstream reads."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from atft_dagster.sources.base import adjust_point_in_time

PANEL_COLUMNS = (
    "date",
    "code",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "turnover",
    "adj_factor",
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "shares_outstanding",
    "market_cap",
    "sector33_code",
    "sector17_code",
    "market_segment",
)


class PanelError(ValueError):
    pass


def sector_as_of(keys: pl.DataFrame, master: pl.DataFrame) -> pl.DataFrame:
    """For each (date, code) the master row with valid_from <= date < valid_to; never a later row."""
    m = master.select(
        "code", "valid_from", "valid_to", "sector33_code", "sector17_code", "market_segment"
    ).sort("valid_from")
    joined = keys.sort("date").join_asof(
        m, left_on="date", right_on="valid_from", by="code", strategy="backward", check_sortedness=False
    )
    expired = pl.col("valid_to").is_not_null() & (pl.col("date") >= pl.col("valid_to"))
    return joined.with_columns(
        [
            pl.when(expired).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("sector33_code", "sector17_code", "market_segment")
        ]
    ).drop("valid_from", "valid_to")


def build_market_panel(quotes: pl.DataFrame, master: pl.DataFrame, calendar: pl.DataFrame) -> pl.DataFrame:
    """Point-in-time adjusted prices, the as-of sector, market cap; sorted by (date, code)."""
    sessions = calendar.filter("is_trading_day")["date"]
    off = quotes.filter(~pl.col("date").is_in(sessions.implode()))
    if len(off):
        raise PanelError(
            f"{len(off)} quote rows fall on non-trading days, e.g. {off['date'][0]} {off['code'][0]}"
        )
    panel = adjust_point_in_time(quotes.sort("code", "date"))
    panel = sector_as_of(panel, master).with_columns(
        (pl.col("close") * pl.col("shares_outstanding")).alias("market_cap")
    )
    return panel.select(PANEL_COLUMNS).sort("date", "code")


def missing_sessions(days: pl.Series, calendar: pl.DataFrame) -> list:
    """Trading days between the first and last of ``days`` that have no data."""
    if days.is_empty():
        return []
    sessions = calendar.filter(pl.col("is_trading_day") & pl.col("date").is_between(days.min(), days.max()))[
        "date"
    ]
    return sorted(set(sessions.to_list()) - set(days.unique().to_list()))


def require_no_gaps(days: pl.Series, calendar: pl.DataFrame) -> None:
    """The raw quotes must cover every trading day inside their range (a lost day fails, named)."""
    gaps = missing_sessions(days, calendar)
    if gaps:
        raise PanelError(
            f"raw_daily_quotes has {len(gaps)} missing trading day(s) inside its range: {[str(d) for d in gaps[:10]]}"
        )


def missing_stock_days(panel: pl.DataFrame, calendar: pl.DataFrame) -> pl.DataFrame:
    """Per code, the trading days between its first and last row that have no row: no-trade days (a halt,
    a file that left the stock out). Columns ``code``, ``missing_days``, ``first_missing``; only codes with
    at least one, most first."""
    sessions = calendar.filter(pl.col("is_trading_day")).select("date").sort("date")
    span = panel.group_by("code").agg(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"))
    expected = span.join(sessions, how="cross").filter(
        pl.col("date").is_between(pl.col("first"), pl.col("last"))
    )
    gaps = expected.select("code", "date").join(panel.select("code", "date"), on=["code", "date"], how="anti")
    return (
        gaps.group_by("code")
        .agg(pl.len().alias("missing_days"), pl.col("date").min().alias("first_missing"))
        .sort(["missing_days", "code"], descending=[True, False])
    )


MIN_SECTOR_COVERAGE = 0.99


@dataclass(frozen=True)
class PanelIntegrity:
    duplicate_keys: int
    sector33_coverage: float  # share of rows whose sector33 is known as of their date
    rows_without_sector33: pl.DataFrame  # a few (date, code) examples
    min_coverage: float

    @property
    def passed(self) -> bool:
        return self.duplicate_keys == 0 and self.sector33_coverage >= self.min_coverage


def panel_integrity(panel: pl.DataFrame, min_coverage: float = MIN_SECTOR_COVERAGE) -> PanelIntegrity:
    """(date, code) must be unique, and sector33 known as of the date on at least ``min_coverage`` rows."""
    dupes = panel.select(pl.struct("date", "code").is_duplicated().sum()).item()
    coverage = 1.0 - panel["sector33_code"].null_count() / max(panel.height, 1)
    missing = panel.filter(pl.col("sector33_code").is_null()).select("date", "code").head(5)
    return PanelIntegrity(int(dupes), float(coverage), missing, min_coverage)
