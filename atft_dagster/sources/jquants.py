"""The J-Quants API v2 as a source, through ``jquantsapi.ClientV2``.

The API key is passed in by the caller (the Dagster layer reads it from ``JQUANTS_API_KEY`` through an
``EnvVar``); it is never logged. Calls are retried with exponential backoff on 429, 5xx and timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import pandas as pd
import polars as pl
import requests

from atft_dagster.sources.base import calendar_frame
from atft_dagster.sources.files import COLUMN_TYPES, Layout, _to_canonical, _typed, snapshots_to_intervals
from atft_dagster.sources.schema import (
    QUOTE_COLUMNS,
    DailyQuotes,
    IndexBars,
    SectorMaster,
    empty_quotes,
    validate,
)

T = TypeVar("T")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
TRADING_HOLDIV = frozenset({"1", "2"})  # 1 business day, 2 half-day session


class JQuantsError(RuntimeError):
    pass


@dataclass
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def call(self, fn: Callable[[], T], what: str) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except requests.HTTPError as err:
                status = err.response.status_code if err.response is not None else None
                if status not in RETRY_STATUS or attempt == self.attempts:
                    raise JQuantsError(f"J-Quants {what} failed with HTTP {status}") from None
            except (requests.Timeout, requests.ConnectionError) as err:
                if attempt == self.attempts:
                    raise JQuantsError(
                        f"J-Quants {what} failed after {attempt} attempts: {type(err).__name__}"
                    ) from None
            self.sleep(min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s))
        raise AssertionError("unreachable")  # pragma: no cover


def _yyyymmdd(d: date) -> str:
    return d.strftime("%Y%m%d")


def _frame(pdf: pd.DataFrame, layout: Layout) -> pl.DataFrame:
    """J-Quants pandas frame -> text columns -> typed -> canonical."""
    if pdf is None or pdf.empty:
        return pl.DataFrame()

    def text(v: Any) -> str | None:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return None
        return v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else str(v)

    raw = pl.DataFrame(
        {c: [text(v) for v in pdf[c]] for c in pdf.columns}, schema={c: pl.String for c in pdf.columns}
    )
    typed, problems = _typed(raw, COLUMN_TYPES[layout])
    if problems:
        raise JQuantsError(
            f"unexpected {layout.value} response: " + "; ".join(p.describe() for p in problems[:5])
        )
    return _to_canonical(layout, typed)


@dataclass
class JQuantsSource:
    """``client`` is a ``jquantsapi.ClientV2`` (or anything with the same four methods)."""

    client: Any
    master_snapshot_days: int = 30
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = "jquants"

    @classmethod
    def from_api_key(cls, api_key: str, **kwargs: Any) -> JQuantsSource:
        import jquantsapi

        return cls(client=jquantsapi.ClientV2(api_key=api_key), **kwargs)

    def daily_quotes(self, start: date, end: date) -> pl.DataFrame:
        pdf = self.retry.call(
            lambda: self.client.get_eq_bars_daily(from_yyyymmdd=_yyyymmdd(start), to_yyyymmdd=_yyyymmdd(end)),
            "daily bars",
        )
        q = _frame(pdf, Layout.JQUANTS_BARS)
        if q.is_empty():
            return empty_quotes()
        q = q.filter(pl.all_horizontal(pl.col("open", "high", "low", "close").is_not_null()))
        return validate(q.select(QUOTE_COLUMNS).sort("date", "code"), DailyQuotes, self.name)

    def sector_master(self, as_of: date) -> pl.DataFrame:
        """Snapshots every ``master_snapshot_days`` back over a year plus ``as_of``, collapsed to intervals."""
        dates = [as_of - timedelta(days=k) for k in range(0, 366, self.master_snapshot_days)]
        snaps = []
        for d in sorted(dates):
            pdf = self.retry.call(lambda d=d: self.client.get_eq_master(date=_yyyymmdd(d)), "equity master")
            frame = _frame(pdf, Layout.JQUANTS_MASTER)
            if not frame.is_empty():
                snaps.append(frame.with_columns(pl.lit(d).alias("snapshot")))
        if not snaps:
            raise JQuantsError("J-Quants equity master returned no rows")
        return validate(snapshots_to_intervals(pl.concat(snaps)), SectorMaster, self.name)

    def topix(self, start: date, end: date) -> pl.DataFrame:
        pdf = self.retry.call(
            lambda: self.client.get_idx_bars_daily_topix(
                from_yyyymmdd=_yyyymmdd(start), to_yyyymmdd=_yyyymmdd(end)
            ),
            "TOPIX bars",
        )
        return validate(_frame(pdf, Layout.JQUANTS_TOPIX).sort("date"), IndexBars, self.name)

    def calendar(self, start: date, end: date) -> pl.DataFrame:
        pdf = self.retry.call(
            lambda: self.client.get_mkt_calendar(from_yyyymmdd=_yyyymmdd(start), to_yyyymmdd=_yyyymmdd(end)),
            "market calendar",
        )
        cal = pl.from_pandas(pdf[["Date", "HolDiv"]].astype({"HolDiv": str}))
        sessions = [d.date() for d, h in zip(cal["Date"], cal["HolDiv"], strict=True) if h in TRADING_HOLDIV]
        return calendar_frame(start, end, sessions)
