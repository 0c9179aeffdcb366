""" "New data lands": write the synthetic market's next trading day(s) into the landing directory as
J-Quants v2 layout CSV files (daily bars, TOPIX, equity master snapshot), the format the file source reads."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl

from atft_dagster.calendar import trading_days_from
from atft_dagster.sectors import MARKET_SEGMENTS
from atft_dagster.sources.synthetic import SyntheticSource
from atft_dagster.storage import write_text_atomic

DATED = re.compile(r"^(daily_quotes|topix|equity_master)_(\d{4}-\d{2}-\d{2})\.csv$")
SEGMENT_CODES = {v: k for k, v in MARKET_SEGMENTS.items()}


def landed_dates(landing_dir: Path) -> list[date]:
    """Dates of the daily-quote files already in the landing directory (or its quarantine)."""
    out = set()
    for folder in (landing_dir, landing_dir / "_quarantine"):
        if folder.exists():
            for p in folder.iterdir():
                m = DATED.match(p.name)
                if m and m.group(1) == "daily_quotes":
                    out.add(date.fromisoformat(m.group(2)))
    return sorted(out)


def next_days_to_land(
    source: SyntheticSource, landing_dir: Path, n: int, after: date | None = None
) -> list[date]:
    if after is None:
        landed = landed_dates(landing_dir)
        history_end = source.history_days()[-1]
        after = max([history_end, *landed])
    return trading_days_from(after, n + 1)[1:] if n > 0 else []


def jquants_bars(quotes: pl.DataFrame) -> pl.DataFrame:
    """Canonical quotes in the J-Quants v2 daily-bars layout (5-character codes, as the API gives them)."""
    return quotes.select(
        pl.col("date").dt.strftime("%Y-%m-%d").alias("Date"),
        (pl.col("code") + "0").alias("Code"),
        pl.col("open").alias("O"),
        pl.col("high").alias("H"),
        pl.col("low").alias("L"),
        pl.col("close").alias("C"),
        pl.col("volume").alias("Vo"),
        pl.col("turnover").alias("Va"),
        pl.col("adj_factor").alias("AdjFactor"),
    )


def jquants_topix(bars: pl.DataFrame) -> pl.DataFrame:
    """Canonical index bars in the J-Quants v2 TOPIX layout."""
    return bars.select(
        pl.col("date").dt.strftime("%Y-%m-%d").alias("Date"),
        pl.col("open").alias("O"),
        pl.col("high").alias("H"),
        pl.col("low").alias("L"),
        pl.col("close").alias("C"),
    )


def jquants_master(master: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The J-Quants v2 equity-master snapshot on ``as_of`` of a canonical sector master (open intervals)."""
    return master.filter(pl.col("valid_to").is_null()).select(
        pl.lit(as_of.isoformat()).alias("Date"),
        (pl.col("code") + "0").alias("Code"),
        pl.col("name").alias("CoNameEn"),
        pl.col("sector17_code").alias("S17"),
        pl.col("sector33_code").alias("S33"),
        pl.col("market_segment").replace_strict(SEGMENT_CODES).alias("Mkt"),
    )


def land_days(source: SyntheticSource, landing_dir: Path, days: list[date]) -> list[Path]:
    """Write the files for ``days``; each file is written atomically. Returns the quote files."""
    if not days:
        return []
    end = max(days)
    quotes = source.daily_quotes(min(days), end)
    topix = source.topix(min(days), end)
    written = []
    for d in days:
        q = quotes.filter(pl.col("date") == d)
        if q.is_empty():
            raise ValueError(f"the synthetic market has no quotes for {d}")
        bars = jquants_bars(q)
        t = jquants_topix(topix.filter(pl.col("date") == d))
        master = jquants_master(source.sector_master(d), d)
        # master and TOPIX first, quotes last: a watcher that keys on the quote file sees a complete day
        write_text_atomic(master.write_csv(), landing_dir / f"equity_master_{d}.csv")
        write_text_atomic(t.write_csv(), landing_dir / f"topix_{d}.csv")
        path = landing_dir / f"daily_quotes_{d}.csv"
        write_text_atomic(bars.write_csv(), path)
        written.append(path)
    return written
