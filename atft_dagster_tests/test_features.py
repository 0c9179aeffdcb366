"""Enriched features: registry, correctness spot checks, targets, point-in-time, leakage, validation."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from atft_dagster.features import (
    Feature,
    FeatureRegistry,
    FeatureValidationError,
    ManifestMismatch,
    compute_features,
    default_registry,
    input_columns,
    require_manifest,
    require_valid,
    target_names,
    validate_features,
)
from atft_dagster.features.leakage import find_leaks
from atft_dagster.features.normalise import normalise, to_arrays
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource

REG = default_registry()


def _inputs(cfg: SyntheticMarketConfig, upto=None):
    src = SyntheticSource(cfg)
    d = src.history_days()
    end = upto or d[-1]
    panel = build_market_panel(src.daily_quotes(d[0], end), src.sector_master(end), src.calendar(d[0], end))
    return panel, src.topix(d[0], end), src.calendar(d[0], d[-1] + timedelta(days=120))


@pytest.fixture(scope="module")
def feats():
    panel, topix, cal = _inputs(SyntheticMarketConfig(seed=5, n_stocks=80, n_days=260))
    df, stats = compute_features(panel, topix, cal)
    return df, panel, topix, stats


def test_registry_size_and_names():
    assert len(REG) >= 150
    assert len(set(REG.names)) == len(REG)
    assert not any(n.startswith("target_") for n in REG.names)
    groups = REG.groups()
    for g in (
        "returns",
        "volatility",
        "trend",
        "oscillators",
        "volume",
        "market",
        "stock_market",
        "sector",
        "cross_section",
        "calendar",
    ):
        assert groups.get(g), g


def test_a_feature_may_not_be_named_like_a_target():
    with pytest.raises(ValueError, match="target_"):
        Feature("target_leak", "returns", 0, pl.col("adj_close"))


def test_manifest_hash_follows_the_definitions():
    m = REG.manifest()
    assert m["n_features"] == len(REG) and len(m["hash"]) == 64
    changed = FeatureRegistry(
        features=tuple(
            f
            if f.name != "ret_5d"
            else Feature("ret_5d", "returns", 5, pl.col("adj_close") / pl.col("adj_close").shift(4) - 1)
            for f in REG.features
        ),
        helpers=REG.helpers,
    )
    assert changed.hash != REG.hash
    smaller = FeatureRegistry(features=REG.features[:-1], helpers=REG.helpers)
    assert smaller.hash != REG.hash
    with pytest.raises(ManifestMismatch, match="rebuild"):
        require_manifest(REG.hash, smaller.manifest(), "model")
    require_manifest(REG.hash, REG.manifest(), "model")


def test_every_feature_valid_on_the_synthetic_market(feats):
    df, *_ = feats
    assert validate_features(df, REG) == []
    assert list(df.columns[5 : 5 + len(REG)]) == REG.names


def _pd_code(panel: pl.DataFrame, code: str) -> pd.DataFrame:
    return panel.filter(pl.col("code") == code).sort("date").to_pandas().set_index("date")


def test_spot_checks_against_pandas(feats):
    df, panel, topix, _ = feats
    code = df.group_by("code").len().sort("len", descending=True)["code"][0]
    p = _pd_code(panel, code)
    f = df.filter(pl.col("code") == code).sort("date").to_pandas().set_index("date")
    c = p["adj_close"]
    r = c.pct_change()
    np.testing.assert_allclose(f["ret_5d"], c / c.shift(5) - 1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(f["vol_20d"], r.rolling(20).std(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(f["sma_gap_20d"], c / c.rolling(20).mean() - 1, rtol=1e-4, atol=1e-6)
    gain, loss = c.diff().clip(lower=0), (-c.diff()).clip(lower=0)
    g, lo = gain.ewm(alpha=1 / 14, adjust=False).mean(), loss.ewm(alpha=1 / 14, adjust=False).mean()
    rsi = (100 * g / (g + lo)).where(np.arange(len(c)) >= 15 - 1)
    np.testing.assert_allclose(f["rsi_14"].iloc[20:], rsi.iloc[20:], rtol=1e-4)
    m = topix.to_pandas().set_index("date")["close"].pct_change().reindex(c.index)
    beta = r.rolling(60).cov(m) / m.rolling(60).var()
    np.testing.assert_allclose(f["beta_60d"], beta, rtol=1e-3, atol=1e-5)
    assert f.index.equals(p.index)


def test_cross_sectional_and_sector_features(feats):
    df, *_ = feats
    day = df.filter(pl.col("date") == df["date"].unique().sort()[150])
    ranks = day["cs_rank_ret_1d"].drop_nulls()
    assert ranks.max() == pytest.approx(1.0) and ranks.min() > 0
    sec = day.group_by("sector33_code").agg(
        pl.col("ret_1d").mean().alias("m"), pl.col("sec_ret_mean_1d").first().alias("f")
    )
    np.testing.assert_allclose(sec["m"], sec["f"], rtol=1e-5)
    assert day["cs_z_ret_1d"].abs().max() <= 5.0
    assert set(day["day_of_week"]) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_calendar_features(feats):
    df, *_ = feats
    cal = (
        df.select("date", "is_month_end", "days_to_holiday", "days_since_holiday").unique("date").sort("date")
    )
    ends = cal.filter(pl.col("is_month_end") == 1)["date"]
    nxt = {d: n for d, n in zip(cal["date"], cal["date"].shift(-1), strict=True)}
    assert all(nxt[d] is None or nxt[d].month != d.month for d in ends)
    # 2022-03-18 (Fri) is followed by the 2022-03-21 holiday: 0 trading days in between
    row = cal.filter(pl.col("date") == pd.Timestamp("2022-03-18").date())
    assert row["days_to_holiday"].item() == 0


def test_targets(feats):
    df, panel, topix, _ = feats
    code = df["code"][0]
    f = df.filter(pl.col("code") == code).sort("date")
    c = panel.filter(pl.col("code") == code).sort("date")["adj_close"].to_numpy()
    for h in (1, 5, 10, 20):
        t = f[f"target_{h}d"].to_numpy()
        np.testing.assert_allclose(t[:-h], c[h:] / c[:-h] - 1, rtol=1e-12)
        assert f[f"target_{h}d"].tail(h).is_null().all()
    mk = topix.sort("date").with_columns((pl.col("close").shift(-1) / pl.col("close") - 1).alias("m1"))
    j = f.join(mk.select("date", "m1"), on="date").head(50)
    np.testing.assert_allclose(j["target_1d_excess"], j["target_1d"] - j["m1"], rtol=1e-9, atol=1e-12)


def test_targets_count_trading_sessions_not_rows(feats):
    """A halted stock's target_hd ends on the h-th XTKS session after t, and is null if the stock has no
    price that session: never taken over the stock's next h rows (which would span more sessions)."""
    df, panel, _, _ = feats
    sessions = panel["date"].unique().sort().to_list()
    pos = {d: i for i, d in enumerate(sessions)}
    counts = panel.group_by("code").len()
    gappy = [
        c
        for c in counts.filter(pl.col("len") < len(sessions))["code"].to_list()
        if panel.filter(pl.col("code") == c)["date"].min() == sessions[0]
    ]
    assert gappy, "the fixture market should contain halted stocks"
    checked_null = checked_value = 0
    for code in gappy[:5]:
        rows = panel.filter(pl.col("code") == code).sort("date")
        price = dict(zip(rows["date"].to_list(), rows["adj_close"].to_list(), strict=True))
        f = df.filter(pl.col("code") == code).sort("date")
        for h in (1, 5, 20):
            for d, got in zip(f["date"].to_list(), f[f"target_{h}d"].to_list(), strict=True):
                k = pos[d] + h
                end = sessions[k] if k < len(sessions) else None
                if end is None or end not in price:
                    assert got is None, (code, d, h)
                    checked_null += 1
                else:
                    assert got == pytest.approx(price[end] / price[d] - 1, rel=1e-12), (code, d, h)
                    checked_value += 1
    assert checked_null > 0 and checked_value > 0


def test_targets_never_among_inputs(feats):
    df, *_ = feats
    inputs = input_columns(df.columns, REG)
    assert inputs == REG.names
    assert not set(inputs) & set(target_names())


def test_no_input_leaks_a_target(feats):
    df, *_ = feats
    assert find_leaks(df, REG.names) == []


def test_leak_detector_catches_a_planted_leak(feats):
    df, *_ = feats
    planted = df.sort("code", "date").with_columns(
        pl.col("target_5d").shift(2).over("code").alias("sneaky"),  # overlaps days t+1..t+3
        (pl.col("target_1d") * 1.5 + 0.001).alias("scaled"),
    )
    leaks = {(lk.feature, lk.target) for lk in find_leaks(planted, ["sneaky", "scaled", "ret_5d"])}
    assert ("sneaky", "target_5d") in leaks and ("scaled", "target_1d") in leaks
    assert not any(f == "ret_5d" for f, _ in leaks)


@pytest.mark.parametrize("seed", [1, 2])
def test_point_in_time_under_truncation(seed):
    cfg = SyntheticMarketConfig(seed=seed, n_stocks=40, n_days=200)
    panel, topix, cal = _inputs(cfg)
    full, _ = compute_features(panel, topix, cal)
    days = sorted(full["date"].unique())
    feature_cols = ["date", "code", "sector33_code", *REG.names]
    for t in (days[70], days[130], days[-2]):
        cut_panel, cut_topix, _ = _inputs(cfg, upto=t)
        cut, _ = compute_features(cut_panel, cut_topix, cal)
        assert_frame_equal(cut.select(feature_cols), full.filter(pl.col("date") <= t).select(feature_cols))


# ---- validation catches broken inputs with a message naming the problem ------------------------
def _broken(df: pl.DataFrame, kind: str) -> pl.DataFrame:
    if kind == "sector33 missing":
        return df.drop("sector33_code")
    if kind == "feature dropped":
        return df.drop("rsi_14")
    if kind == "all-null column":
        return df.with_columns(pl.lit(None, pl.Float32).alias("macd"))
    if kind == "inf":
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == 7)
            .then(float("inf"))
            .otherwise(pl.col("vol_20d"))
            .cast(pl.Float32)
            .alias("vol_20d")
        )
    if kind == "duplicate row":
        return pl.concat([df, df.head(1)])
    if kind == "bad sector code":
        return df.with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(pl.lit("1234"))
            .otherwise(pl.col("sector33_code"))
            .alias("sector33_code")
        )
    if kind == "constant column":
        return df.with_columns(pl.lit(1.0, pl.Float32).alias("ret_1d"))
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("sector33 missing", "sector33_code"),
        ("feature dropped", "rsi_14"),
        ("all-null column", "null rate after warm-up 100.0% > 5% column 'macd'"),
        ("inf", "no inf or NaN column 'vol_20d'"),
        ("duplicate row", "multiple_fields_uniqueness"),
        ("bad sector code", "isin"),
        ("constant column", "constant column column 'ret_1d'"),
    ],
)
def test_validation_catches(feats, kind, expected):
    df, *_ = feats
    with pytest.raises(FeatureValidationError) as err:
        require_valid(_broken(df, kind), REG)
    assert expected in str(err.value)


# ---- normalisation ---------------------------------------------------------------------------
def test_normalise_cross_section_and_mask(feats):
    df, *_ = feats
    z = normalise(df, REG)
    day = z.filter(pl.col("date") == z["date"].unique().sort()[200])
    assert abs(day["ret_5d"].median()) < 1e-6
    assert day["ret_5d"].abs().max() <= 5.0
    values, mask = to_arrays(z, REG.names)
    assert values.shape == mask.shape == (z.height, len(REG))
    assert (values[~mask] == 0).all() and mask.mean() > 0.8


def test_normalise_is_per_date(feats):
    df, *_ = feats
    dates = df["date"].unique().sort()
    t = dates[150]
    full = normalise(df, REG).filter(pl.col("date") == t)
    cut = normalise(df.filter(pl.col("date") <= t), REG).filter(pl.col("date") == t)
    assert_frame_equal(full, cut)


def test_a_terminal_sees_a_bar_over_the_feature_stages(capsys):
    panel, topix, cal = _inputs(SyntheticMarketConfig(seed=3, n_stocks=20, n_days=90))
    quiet, _ = compute_features(panel, topix, cal)
    assert "features" not in capsys.readouterr().err  # no terminal (a log file, CI): no bar
    shown, _ = compute_features(panel, topix, cal, progress=True)
    assert shown.equals(quiet) and "features: 100%" in capsys.readouterr().err
