"""Market panel: as-of sector joins never look ahead; the panel is point-in-time."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from atft_dagster.panel import (
    PanelError,
    build_market_panel,
    missing_sessions,
    missing_stock_days,
    sector_as_of,
)
from atft_dagster.sources import SyntheticSource


def test_sector_as_of_uses_the_interval_in_force():
    master = pl.DataFrame(
        {
            "code": ["1301", "1301"],
            "sector33_code": ["0050", "3050"],
            "sector17_code": ["1", "1"],
            "market_segment": ["Prime", "Prime"],
            "valid_from": [date(2024, 1, 1), date(2024, 3, 1)],
            "valid_to": [date(2024, 3, 1), None],
        }
    )
    keys = pl.DataFrame(
        {
            "date": [date(2023, 12, 29), date(2024, 2, 29), date(2024, 3, 1), date(2024, 5, 1)],
            "code": ["1301"] * 4,
        }
    )
    got = sector_as_of(keys, master).sort("date")["sector33_code"].to_list()
    assert got == [None, "0050", "3050", "3050"]  # before the first interval: unknown, not the future value


def test_expired_interval_gives_no_sector():
    master = pl.DataFrame(
        {
            "code": ["1301"],
            "sector33_code": ["0050"],
            "sector17_code": ["1"],
            "market_segment": ["Prime"],
            "valid_from": [date(2024, 1, 1)],
            "valid_to": [date(2024, 2, 1)],
        }
    )
    keys = pl.DataFrame({"date": [date(2024, 2, 5)], "code": ["1301"]})
    assert sector_as_of(keys, master)["sector33_code"].to_list() == [None]


def test_panel_is_point_in_time_under_truncation(default_market):
    src = SyntheticSource(default_market.config)
    days = src.history_days()
    full = build_market_panel(
        src.daily_quotes(days[0], days[-1]), src.sector_master(days[-1]), src.calendar(days[0], days[-1])
    )
    moves = sorted(default_market.days[e.day] for e in default_market.reclassifications)
    for t in [days[100], moves[len(moves) // 2], days[-50]]:
        cut = build_market_panel(src.daily_quotes(days[0], t), src.sector_master(t), src.calendar(days[0], t))
        assert cut.equals(full.filter(pl.col("date") <= t)), t


def test_panel_rejects_non_trading_days(small_config):
    src = SyntheticSource(small_config)
    d = src.history_days()
    q = (
        src.daily_quotes(d[0], d[5]).head(1).with_columns(pl.lit(date(2022, 1, 8)).alias("date"))
    )  # a Saturday
    with pytest.raises(PanelError, match="non-trading"):
        build_market_panel(q, src.sector_master(d[5]), src.calendar(d[0], d[5]))


def test_missing_sessions_found(small_config):
    src = SyntheticSource(small_config)
    d = src.history_days()
    days = pl.Series([d[0], d[1], d[4]])
    assert missing_sessions(days, src.calendar(d[0], d[4])) == [d[2], d[3]]


def test_a_stock_missing_on_a_session_is_a_counted_no_trade_day(small_config):
    src = SyntheticSource(small_config)
    d = src.history_days()
    q = src.daily_quotes(d[0], d[9])
    codes = sorted(q["code"].unique().to_list())
    a, b = codes[0], codes[1]
    # a misses two sessions inside its span; b misses one; a session missing for everyone is not here
    q = q.filter(~((pl.col("code") == a) & pl.col("date").is_in([d[3], d[6]])))
    q = q.filter(~((pl.col("code") == b) & (pl.col("date") == d[5])))
    panel = build_market_panel(q, src.sector_master(d[9]), src.calendar(d[0], d[9]))
    gaps = missing_stock_days(panel, src.calendar(d[0], d[9]))
    assert gaps.filter(pl.col("code").is_in([a, b])).rows() == [(a, 2, d[3]), (b, 1, d[5])]
    assert set(gaps["code"]) >= {a, b}
    full = build_market_panel(src.daily_quotes(d[0], d[9]), src.sector_master(d[9]), src.calendar(d[0], d[9]))
    assert missing_stock_days(full, src.calendar(d[0], d[9])).filter(pl.col("code").is_in([a, b])).is_empty()
