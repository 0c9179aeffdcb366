"""Close-only and volume-less data: the features it cannot support are dropped with a reason, the rest
validate; nothing is invented and nothing fails as a constant or null column."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from atft_dagster.features import compute_features, default_registry, validate_features
from atft_dagster.features.support import (
    CLOSE_ONLY,
    INDEX_CLOSE_ONLY,
    NO_VOLUME,
    dropped_summary,
    supported_registry,
)
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource
from atft_dagster.sources.base import equal_weighted_index


@pytest.fixture(scope="module")
def close_only():
    src = SyntheticSource(SyntheticMarketConfig(seed=5, n_stocks=60, n_days=200))
    d = src.history_days()
    quotes = src.daily_quotes(d[0], d[-1]).with_columns(
        pl.col("close").alias("open"),
        pl.col("close").alias("high"),
        pl.col("close").alias("low"),
        pl.lit(None, pl.Float64).alias("volume"),
        pl.lit(None, pl.Float64).alias("turnover"),
    )
    panel = build_market_panel(quotes, src.sector_master(d[-1]), src.calendar(d[0], d[-1]))
    return panel, src.topix(d[0], d[-1]), src.calendar(d[0], d[-1] + timedelta(days=120))


def test_every_feature_knows_the_columns_it_reads():
    reg = default_registry()
    assert reg.base_columns("ret_1d") >= {"adj_close"} and not reg.base_columns("ret_1d") & {"adj_volume"}
    volume = [f.name for f in reg.features if "adj_volume" in reg.base_columns(f.name)]
    assert volume and all(
        f.group in ("volume", "cross_section", "oscillators") for f in reg.features if f.name in volume
    )


def test_close_only_data_keeps_what_it_supports(close_only):
    panel, topix, cal = close_only
    full = default_registry()
    df_full, _ = compute_features(panel, topix, cal, full)
    assert validate_features(df_full, full)  # the whole registry fails on such data (constant / null columns)
    reg, dropped = supported_registry(full, panel)
    assert 0 < len(dropped) < len(full) and len(reg) + len(dropped) == len(full)
    assert dropped["ret_intraday"] == CLOSE_ONLY and dropped["log_turnover"].startswith("the source has")
    assert any(why == NO_VOLUME for why in dropped.values())
    df, _ = compute_features(panel, topix, cal, reg)
    assert validate_features(df, reg) == []  # the count asserted is the supported registry's
    assert reg.hash != full.hash and "ret_1d" in df.columns and "ret_intraday" not in df.columns
    groups = {r["group"] for r in dropped_summary(dropped, full)}
    assert "volume" in groups and sum(r["features"] for r in dropped_summary(dropped, full)) == len(dropped)


def test_the_index_and_the_panel_are_judged_apart(close_only):
    """Close-only stocks beside a real TOPIX keep the index's gap (it reads TOPIX's open, not the stocks');
    an index derived from closes loses it, for its own reason."""
    panel, topix, _ = close_only
    reg = default_registry()
    assert reg.inputs("mkt_gap") == {("index", "open"), ("index", "close")}
    assert ("panel", "adj_open") in reg.inputs("ret_intraday")
    kept, dropped = supported_registry(reg, panel, topix)
    assert "mkt_gap" in kept.names and dropped["ret_intraday"] == CLOSE_ONLY
    derived = equal_weighted_index(
        panel.select("date", "code", "open", "high", "low", "close", "volume", "adj_factor")
    )
    kept, dropped = supported_registry(reg, panel, derived)
    assert "mkt_gap" not in kept.names and dropped["mkt_gap"] == INDEX_CLOSE_ONLY
    assert "mkt_ret_1d" in kept.names  # closes are all an index needs for returns


def test_full_ohlcv_data_drops_nothing():
    src = SyntheticSource(SyntheticMarketConfig(seed=5, n_stocks=30, n_days=60))
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    reg, dropped = supported_registry(default_registry(), panel)
    assert dropped == {} and reg.hash == default_registry().hash
