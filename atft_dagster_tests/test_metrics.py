"""Metrics: cross-checked with scipy, hand-computed cases, and the sign convention."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from atft_dagster.evaluation.metrics import (
    daily_ic,
    evaluate_predictions,
    jpx_spread,
    newey_west_t,
    pearson,
    quantile_long_short,
    spearman,
)


def test_correlations_match_scipy_including_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.standard_normal(200)
        b = 0.3 * a + rng.standard_normal(200)
        a[::7] = a[0]  # ties
        assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-10)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-10)


def test_daily_ic_per_day_matches_scipy():
    rng = np.random.default_rng(1)
    preds = [rng.standard_normal(50) for _ in range(10)]
    labels = [p * 0.2 + rng.standard_normal(50) for p in preds]
    labels[3][:5] = np.nan
    got = daily_ic(preds, labels, rank=True)
    for p, y, g in zip(preds, labels, got, strict=True):
        ok = np.isfinite(y)
        assert g == pytest.approx(stats.spearmanr(p[ok], y[ok])[0], abs=1e-10)
    assert np.isnan(daily_ic([np.arange(3.0)], [np.arange(3.0)], min_stocks=5)[0])


def test_hand_computed_portfolios():
    p = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    y = np.array([-0.05, -0.03, 0, 0, 0, 0, 0, 0, 0.02, 0.04])
    ls, long, short = quantile_long_short(p, y)  # quintile of 10 = 2 stocks each side
    assert ls == pytest.approx(((0.02 + 0.04) / 2 - (-0.05 - 0.03) / 2) / 2)
    assert set(long) == {8, 9} and set(short) == {0, 1}
    # JPX with 2 per side: weights [2, 1] (mean 1.5); best long gets 2, worst short gets 2
    assert jpx_spread(p, y, size=2) == pytest.approx(
        (0.04 * 2 + 0.02 * 1) / 1.5 - (-0.05 * 2 + -0.03 * 1) / 1.5
    )


def _frame(days: int, n: int, signal: float, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        y = rng.standard_normal(n) * 0.02
        for i in range(n):
            rows.append(
                (
                    date(2024, 1, 1) + timedelta(days=d),
                    f"{1000 + i}",
                    y[i],
                    signal * y[i] + rng.standard_normal() * 0.001,
                )
            )
    return pl.DataFrame(rows, schema=["date", "code", "label", "pred"], orient="row")


def test_sign_convention_perfect_and_reversed():
    f = _frame(30, 40, 1.0)
    good, daily = evaluate_predictions(f, "pred", "label", min_stocks=10)
    bad, _ = evaluate_predictions(f.with_columns(-pl.col("pred")), "pred", "label", min_stocks=10)
    for name in ("ic", "rank_ic", "icir", "rank_icir", "ls_annual_return", "ls_sharpe", "jpx_sharpe"):
        assert getattr(good, name) > 0 > getattr(bad, name), name
    assert good.rank_ic > 0.95 and good.hit_rate > 0.9 and bad.hit_rate < 0.1
    assert good.deciles[-1] > good.deciles[0]
    assert daily.height == 30 and good.days == 30


def test_days_with_too_few_stocks_are_excluded_and_counted():
    f = pl.concat(
        [_frame(10, 40, 1.0), _frame(3, 5, 1.0, seed=2).with_columns(pl.col("date") + timedelta(days=100))]
    )
    report, _ = evaluate_predictions(f, "pred", "label", min_stocks=10)
    assert report.days == 10 and report.days_excluded == 3


def test_icir_and_t_stat_definitions():
    f = _frame(25, 30, 0.3, seed=5)
    report, daily = evaluate_predictions(f, "pred", "label", min_stocks=10)
    ric = daily["rank_ic"].to_numpy()
    assert report.rank_icir == pytest.approx(ric.mean() / ric.std(ddof=1))
    assert report.rank_ic_t == pytest.approx(report.rank_icir * np.sqrt(25))  # lag 0: the plain t
    lagged, _ = evaluate_predictions(f, "pred", "label", min_stocks=10, nw_lag=4)
    assert lagged.nw_lag == 4 and lagged.rank_ic_t == pytest.approx(newey_west_t(ric, 4))
    ls = daily["ls_return"].to_numpy()
    assert report.ls_sharpe == pytest.approx(ls.mean() / ls.std(ddof=1) * np.sqrt(252))


def test_newey_west_by_hand_and_honest_on_overlapping_noise():
    x = np.array([0.3, -0.1, 0.2, 0.4, -0.2, 0.1])
    d, n = x - x.mean(), len(x)
    g0, g1 = d @ d / n, d[1:] @ d[:-1] / n
    assert newey_west_t(x, 1) == pytest.approx(x.mean() / np.sqrt((g0 + 2 * 0.5 * g1) / (n - 1)))
    # 20-day sums of pure noise overlap by 19 days: the plain t rejects "mean 0" far too often,
    # the Newey-West t (lag 19) close to the nominal rate
    rng = np.random.default_rng(0)
    naive = nw = 0
    sims = 300
    for _ in range(sims):
        e = rng.standard_normal(250 + 19)
        s = np.convolve(e, np.ones(20), "valid")
        naive += abs(newey_west_t(s, 0)) > 1.96
        nw += abs(newey_west_t(s, 19)) > 1.96
    assert naive / sims > 0.4 and nw / sims < 0.2
