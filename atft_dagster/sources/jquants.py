"""The J-Quants API v2 as a source, through ``jquantsapi.ClientV2``.

The API key is passed in by the caller (the Dagster layer reads it from ``JQUANTS_API_KEY`` through an
``EnvVar``); it is never logged. There is exactly one retry layer, ours (:class:`RetryPolicy`: bounded
exponential backoff with jitter on 429, 5xx, timeouts and dropped connections, honouring ``Retry-After``):
the client's own urllib3 retry is switched off. Pagination is bounded and a repeated key is an error; a
response that is not the JSON expected is a :class:`JQuantsError` naming the endpoint and the dates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import pandas as pd
import polars as pl
import requests
from tqdm.auto import tqdm

from atft_dagster.sources.base import calendar_frame
from atft_dagster.sources.layouts import (
    COLUMN_TYPES,
    Layout,
    snapshots_to_intervals,
    to_canonical,
    typed_columns,
)
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
    jitter: float = 0.25  # each wait is stretched by a uniform fraction in [0, jitter), then capped
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before attempt ``attempt + 1``: exponential, jittered, at least ``Retry-After``, capped."""
        wait = self.base_delay_s * 2 ** (attempt - 1) * (1 + self.jitter * self.rng.random())
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_delay_s)

    def call(self, fn: Callable[[], T], what: str) -> T:
        for attempt in range(1, self.attempts + 1):
            retry_after = None
            try:
                return fn()
            except requests.HTTPError as err:
                status = err.response.status_code if err.response is not None else None
                if status not in RETRY_STATUS or attempt == self.attempts:
                    raise JQuantsError(f"J-Quants {what} failed with HTTP {status}") from None
                retry_after = _retry_after(err.response)
            except KeyError as err:  # the client library indexes the fields it expects
                raise JQuantsError(f"J-Quants {what}: the response lacks the field(s) {err}") from None
            except (requests.Timeout, requests.ConnectionError) as err:
                if attempt == self.attempts:
                    raise JQuantsError(
                        f"J-Quants {what} failed after {attempt} attempts: {type(err).__name__}"
                    ) from None
            self.sleep(self.delay(attempt, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: requests.Response | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by J-Quants and is ignored)."""
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def bounded_client(api_key: str, base_url: str | None = None, max_pages: int = 1000) -> Any:
    """A ``jquantsapi.ClientV2`` with its urllib3 retry off (our RetryPolicy is the only retry layer),
    at most ``max_pages`` pages per request, a repeated ``pagination_key`` refused, and malformed JSON
    reported as :class:`JQuantsError`. ``base_url`` points it elsewhere (a local test server)."""
    import jquantsapi
    from requests.adapters import HTTPAdapter

    class BoundedClientV2(jquantsapi.ClientV2):
        def _request_session(self, *args: Any, **kwargs: Any) -> requests.Session:
            if self._session is None:
                session = requests.Session()
                adapter = HTTPAdapter(max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                self._session = session
            return self._session

        def _get_paginated(
            self, path: str, params: dict[str, Any] | None = None, data_key: str = "data"
        ) -> list[dict[str, Any]]:
            url = f"{self.JQUANTS_API_BASE}{path}"
            query: dict[str, Any] = dict(params or {})
            where = f"{path} {dict(params or {})}"
            rows: list[dict[str, Any]] = []
            seen: set[str] = set()
            for _ in range(max_pages):
                resp = self._get(url, params=query)
                try:
                    payload = resp.json()
                except ValueError as err:
                    raise JQuantsError(f"J-Quants {where}: the response is not JSON ({err})") from None
                batch = payload.get(data_key) if isinstance(payload, dict) else None
                if not isinstance(batch, list):
                    raise JQuantsError(f"J-Quants {where}: the response has no '{data_key}' list")
                rows.extend(batch)
                key = payload.get("pagination_key")
                if not key:
                    return rows
                if key in seen:
                    raise JQuantsError(f"J-Quants {where}: pagination_key {key!r} repeated; stopped")
                seen.add(key)
                query["pagination_key"] = key
            raise JQuantsError(f"J-Quants {where}: more than {max_pages} pages; stopped")

    client = BoundedClientV2(api_key=api_key)
    if base_url:
        client.JQUANTS_API_BASE = base_url.rstrip("/")
    return client


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
    typed, problems = typed_columns(raw, COLUMN_TYPES[layout])
    if problems:
        raise JQuantsError(
            f"unexpected {layout.value} response: " + "; ".join(p.describe() for p in problems[:5])
        )
    return to_canonical(layout, typed)


@dataclass
class JQuantsSource:
    """``client`` is a ``jquantsapi.ClientV2`` (or anything with the same four methods)."""

    client: Any
    master_snapshot_days: int = 30
    workers: int = 1  # sessions requested at once by daily_quotes (J-Quants rate-limits by plan)
    progress: bool = False  # a bar over the sessions of daily_quotes (for a terminal)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = "jquants"

    @classmethod
    def from_api_key(
        cls, api_key: str, base_url: str | None = None, max_pages: int = 1000, **kwargs: Any
    ) -> JQuantsSource:
        return cls(client=bounded_client(api_key, base_url, max_pages), **kwargs)

    def daily_quotes(self, start: date, end: date) -> pl.DataFrame:
        """Every stock's bars, one request per session of the exchange calendar (the API takes a whole
        market only by ``date``; a bare from/to range needs a ``code``), ``workers`` sessions at a time."""

        def bars_on(d: date) -> pl.DataFrame:
            pdf = self.retry.call(
                lambda: self.client.get_eq_bars_daily(date_yyyymmdd=_yyyymmdd(d)), f"daily bars {d}"
            )
            return _frame(pdf, Layout.JQUANTS_BARS)

        sessions = self.sessions(start, end)
        bar = tqdm(total=len(sessions), desc="J-Quants daily bars", unit="day", disable=not self.progress)
        with bar, ThreadPoolExecutor(max_workers=self.workers) as pool:
            frames = []
            for frame in pool.map(bars_on, sessions):
                frames.append(frame)
                bar.update(1)
        frames = [f for f in frames if not f.is_empty()]
        if not frames:
            return empty_quotes()
        q = pl.concat(frames)
        q = q.filter(pl.all_horizontal(pl.col("open", "high", "low", "close").is_not_null()))
        return validate(q.select(QUOTE_COLUMNS).sort("date", "code"), DailyQuotes, self.name)

    def sessions(self, start: date, end: date) -> list[date]:
        """The trading days in [start, end] by J-Quants' own calendar."""
        cal = self.calendar(start, end)
        return cal.filter("is_trading_day")["date"].to_list()

    def sector_master(self, as_of: date) -> pl.DataFrame:
        """Snapshots every ``master_snapshot_days`` back over a year plus ``as_of``, collapsed to intervals."""
        dates = [as_of - timedelta(days=k) for k in range(0, 366, self.master_snapshot_days)]
        snaps = []
        for d in sorted(dates):
            pdf = self.retry.call(
                lambda d=d: self.client.get_eq_master(date=_yyyymmdd(d)), f"equity master {d}"
            )
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
            f"TOPIX bars {start}..{end}",
        )
        bars = _frame(pdf, Layout.JQUANTS_TOPIX)
        if bars.is_empty():
            raise JQuantsError(f"J-Quants TOPIX bars {start}..{end}: no rows returned")
        return validate(bars.sort("date"), IndexBars, self.name)

    def calendar(self, start: date, end: date) -> pl.DataFrame:
        pdf = self.retry.call(
            lambda: self.client.get_mkt_calendar(from_yyyymmdd=_yyyymmdd(start), to_yyyymmdd=_yyyymmdd(end)),
            f"market calendar {start}..{end}",
        )
        if pdf is None or pdf.empty or not {"Date", "HolDiv"} <= set(pdf.columns):
            raise JQuantsError(f"J-Quants market calendar {start}..{end}: no Date/HolDiv rows returned")
        cal = pl.from_pandas(pdf[["Date", "HolDiv"]].astype({"HolDiv": str}))
        sessions = [d.date() for d, h in zip(cal["Date"], cal["HolDiv"], strict=True) if h in TRADING_HOLDIV]
        return calendar_frame(start, end, sessions)
