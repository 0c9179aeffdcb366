"""The synthetic market: determinism, realism constraints, events and the oracle."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from atft_dagster.calendar import trading_days
from atft_dagster.market import SyntheticMarketConfig, market_preset, pure_noise_market, simulate
from atft_dagster.market.calibration import oracle_quality
from atft_dagster.market.simulator import (
    STRESS_REGIME,
    _next_regime,
    expected_stress_multiplier,
    rebuild_horizon_oracle,
    regime_transition,
)
from atft_dagster.panel import build_market_panel
from atft_dagster.sectors import SECTOR33, VALID_SECTOR33_CODES
from atft_dagster.sources import SyntheticSource


def _bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def test_same_config_and_seed_is_byte_identical(small_config):
    a, b = simulate(small_config), simulate(small_config)
    for frame in ("quotes_frame", "sector_master_frame", "topix_frame", "oracle_frame", "peer_network_frame"):
        assert _bytes(getattr(a, frame)()) == _bytes(getattr(b, frame)()), frame


def test_other_seed_differs(small_config):
    other = simulate(small_config.model_copy(update={"seed": small_config.seed + 1}))
    assert not np.allclose(other.returns, simulate(small_config).returns)


def test_prefix_stable(small_config, small_market):
    longer = simulate(small_config, n_days=small_config.n_days + 15)
    n = small_config.n_days
    np.testing.assert_array_equal(longer.close[:n], small_market.close[:n])
    np.testing.assert_array_equal(longer.oracle[:n], small_market.oracle[:n])
    assert longer.days[:n] == small_market.days


def test_days_are_xtks_sessions(small_market):
    d = small_market.days
    assert d == trading_days(d[0], d[-1])


def test_ohlc_valid_and_volume_tracks_abs_return(small_market):
    m, obs = small_market, small_market.observed
    hi, lo, op, cl = m.high[obs], m.low[obs], m.open[obs], m.close[obs]
    assert (hi >= np.maximum(op, cl)).all() and (lo <= np.minimum(op, cl)).all() and (lo > 0).all()
    # within-stock: demean log volume per stock before correlating with |return|
    v = np.log(m.volume + 1) - np.log(m.volume + 1).mean(axis=0)
    assert np.corrcoef(np.abs(m.returns)[obs], v[obs])[0, 1] > 0.2


def test_codes_sectors_segments(small_market):
    m = small_market
    assert all(len(c) == 4 and c.isdigit() for c in m.codes)
    master = m.sector_master_frame()
    assert set(master["sector33_code"]) <= VALID_SECTOR33_CODES
    assert all(
        SECTOR33[s][1] == s17 for s, s17 in master.select("sector33_code", "sector17_code").iter_rows()
    )
    assert set(master["market_segment"]) <= {"Prime", "Standard", "Growth"}


def test_events_present_on_default_market(default_market):
    m = default_market
    assert (m.adj_factor < 1).sum() > 10, "stock splits"
    assert len(m.reclassifications) >= 3, "sector reclassifications"
    first = m.listed.argmax(axis=0)
    assert (first > 0).sum() > 5, "listings mid-sample"
    assert (m.listed[0] & ~m.listed[-1]).sum() > 3, "delistings"
    assert (m.listed & ~m.observed).sum() > 20, "trading halts (missing rows)"
    master = m.sector_master_frame()
    assert master.filter(pl.col("valid_to").is_not_null()).height == len(
        {(e.stock, e.day) for e in m.reclassifications if e.day > first[e.stock]}
    )


def test_split_raw_drops_and_adjusted_is_continuous(default_market):
    m = default_market
    t, i = map(int, np.argwhere((m.adj_factor < 1) & m.observed & np.roll(m.observed, 1, axis=0))[0])
    ratio = 1 / m.adj_factor[t, i]
    assert m.close[t, i] / m.close[t - 1, i] == pytest.approx((1 + m.returns[t, i]) / ratio, rel=0.02)
    src = SyntheticSource(m.config)
    q = src.daily_quotes(m.days[0], m.days[-1])
    panel = build_market_panel(q, src.sector_master(m.days[-1]), src.calendar(m.days[0], m.days[-1]))
    latest = m.quotes_frame(with_adjusted=True).select("date", "code", pl.col("adj_close").alias("latest"))
    both = panel.join(latest, on=["date", "code"]).sort("code", "date")
    r = both.with_columns(
        (pl.col("adj_close") / pl.col("adj_close").shift(1).over("code") - 1).alias("r_pit"),
        (pl.col("latest") / pl.col("latest").shift(1).over("code") - 1).alias("r_latest"),
    ).drop_nulls(["r_pit", "r_latest"])
    np.testing.assert_allclose(r["r_pit"], r["r_latest"], rtol=1e-9, atol=1e-12)
    assert r["r_pit"].abs().max() < 0.7  # no split-sized jumps survive adjustment


def test_topix_is_cap_weighted(small_market):
    m = small_market
    lvl = m.topix[:, 3]
    caps = m.close * m.shares  # raw close x raw shares = split-free cap (up to price rounding)
    for t in (10, 50, 100):
        w = np.where(m.listed[t], caps[t - 1], 0.0)
        expected = lvl[t - 1] * (1 + (w / w.sum()) @ m.returns[t])
        assert lvl[t] == pytest.approx(expected, rel=2e-3)


def _mean_rank_ic(m, horizon_idx: int = 0, start: int = 60) -> tuple[float, float]:
    ics = []
    for t in range(start, m.n_days - 1):
        ok = m.observed[t] & m.observed[t + 1]
        ics.append(spearmanr(m.oracle[t, ok, horizon_idx], m.returns[t + 1, ok])[0])
    ics = np.array(ics)
    return float(ics.mean()), float(ics.std(ddof=1) / np.sqrt(len(ics)))


def test_oracle_calibration_default_market(default_market):
    mean, _ = _mean_rank_ic(default_market)
    assert 0.08 <= mean <= 0.15


def test_pure_noise_market_has_no_oracle_skill():
    cfg = SyntheticMarketConfig(n_stocks=200, n_days=400).with_effects(
        reversal=0, momentum=0, volume_shock=0, peer_lead_lag=0
    )
    assert cfg.effects.is_zero()
    m = simulate(cfg)
    for name in ("reversal", "momentum", "volume_shock", "peer_lead_lag"):
        assert np.all(m.effect_parts[name] == 0)
    mean, se = _mean_rank_ic(m)
    assert abs(mean) < 3 * se + 1e-3  # only beta x drift is left: no exploitable skill
    assert np.ptp(m.oracle[:, :, 0], axis=1).min() > 0  # ... but that is a priced exposure (beta)


def test_canary_market_has_nothing_to_predict():
    """The leakage canary drops the beta premium too: every stock has the same expected return over
    every horizon, while the risk (and the features built from it) stays."""
    cfg = pure_noise_market(seed=3, n_stocks=60, n_days=200)
    assert cfg.effects.is_zero() and cfg.market_drift == 0
    m = simulate(cfg)
    assert np.all(m.oracle == 0)
    assert np.nanstd(m.returns[1:]) > 0.01 and np.ptp(m.beta) > 0.5
    assert pure_noise_market(seed=3, n_stocks=60, n_days=200, market_drift=0.001).market_drift == 0.001


def test_each_effect_strength_changes_the_oracle(small_config, small_market):
    for name in ("reversal", "momentum", "volume_shock", "peer_lead_lag"):
        zeroed = simulate(small_config.with_effects(**{name: 0.0}))
        assert np.all(zeroed.effect_parts[name] == 0)
        assert np.any(small_market.effect_parts[name] != 0)


def test_peer_network_overlaps_but_differs_from_sectors(default_market):
    m = default_market
    net = m.peer_network_frame()
    size = m.config.peer_cluster_size
    assert net.height == pytest.approx(m.config.n_stocks / size * size * (size - 1) / 2, rel=0.05)
    sector = dict(zip(m.codes, m.sector[0], strict=True))
    same = np.mean([sector[a] == sector[b] for a, b in net.select("src", "dst").iter_rows()])
    assert 0.15 < same < 0.9


def test_presets_demo_is_todays_market_and_realistic_is_calibrated():
    """``demo`` is the default market unchanged; ``realistic`` (1000 stocks, three seeds never used in
    development) has the 1-day oracle RankIC 0.05-0.07 and JPX daily-spread Sharpe 0.3-0.6 of real markets,
    and a rank ICIR well below the demo's."""
    assert market_preset("demo") == SyntheticMarketConfig()
    with pytest.raises(ValueError, match="unknown market preset"):
        market_preset("easy")
    quality = [
        oracle_quality(simulate(market_preset("realistic", seed=s, n_stocks=1000, n_days=500)))
        for s in (101, 202, 303)
    ]
    ric = np.mean([q.rank_ic for q in quality])
    jpx = np.mean([q.jpx_sharpe for q in quality])
    icir = np.mean([q.rank_icir for q in quality])
    assert 0.05 <= ric <= 0.07 and 0.3 <= jpx <= 0.6 and 0.3 <= icir <= 0.6, (ric, jpx, icir)
    assert min(q.share_negative_days for q in quality) > 0.2  # factor crashes: many losing days
    demo = oracle_quality(simulate(market_preset("demo", seed=101, n_stocks=1000, n_days=500)))
    assert demo.rank_icir > 4 * icir


def test_effect_dynamics_leave_the_other_draws_alone():
    """The dynamics draw from their own stream: with them on, listings, halts, splits and sectors are the
    same market; prices differ."""
    base = SyntheticMarketConfig(seed=3, n_stocks=60, n_days=120)
    dyn = base.model_copy(update={"dynamics": market_preset("realistic").dynamics})
    a, b = simulate(base), simulate(dyn)
    assert (a.observed == b.observed).all() and (a.adj_factor == b.adj_factor).all()
    assert (a.sector == b.sector).all() and not np.allclose(a.returns, b.returns)
    assert np.abs(b.strength_drift).max() > 0 and not b.strength_drift[:, 1].std() == 0


def test_oracle_is_the_expected_return_when_every_shock_is_off():
    """With no shock left the next day's return is its expectation, so it must equal the 1-day oracle —
    the beta premium included (``beta * E[m]``, E[m] = market_drift: once missing from the oracle)."""
    cfg = SyntheticMarketConfig(  # idiosyncratic noise 1e-12, not 0: abnormal volume divides by it
        seed=4,
        n_stocks=50,
        n_days=120,
        market_vol=0.0,
        sector_vol=0.0,
        cluster_vol=0.0,
        idio_vol_median=1e-12,
        volume_abs_return_sensitivity=0.0,  # else beta * drift / 1e-12 overflows exp (volume is unused)
    ).with_effects(reversal=0.05, volume_shock=0.0)
    m = simulate(cfg)
    for t in range(30, 119):
        ok = m.observed[t] & m.observed[t + 1]
        np.testing.assert_allclose(m.returns[t + 1, ok], m.oracle[t, ok, 0], rtol=0, atol=1e-9)
    assert np.ptp(m.oracle[60, :, 0]) > 0
    np.testing.assert_allclose(sum(m.effect_parts.values()), m.oracle[:, :, 0], rtol=0, atol=1e-15)


def test_regime_expectation_is_the_chain_the_simulator_draws():
    """``expected_stress_multiplier`` (the horizon oracle's view of the regime k days ahead) against regime
    paths drawn with the simulator's own ``_next_regime``."""
    stay, to_stress, mult, steps = (0.9, 0.8, 0.7), 0.4, -1.0, 6
    trans = regime_transition(stay, to_stress)
    np.testing.assert_allclose(trans.sum(axis=1), 1.0)
    expect = expected_stress_multiplier(np.array([0, 1, 2]), trans, mult, steps)
    rng = np.random.default_rng(0)
    n = 20_000
    for start in range(3):
        regime = np.full(n, start)
        for j in range(1, steps + 1):
            regime = np.array(
                [_next_regime(r, u, stay, to_stress) for r, u in zip(regime, rng.random(n), strict=True)]
            )
            seen = np.where(regime == STRESS_REGIME, mult, 1.0)
            assert abs(seen.mean() - expect[start, j]) < 4 * seen.std() / np.sqrt(n) + 1e-9, (start, j)
    assert expect[2, 1] < 0 < expect[0, 1]  # in stress, tomorrow's momentum is expected to reverse
    np.testing.assert_array_equal(expected_stress_multiplier(np.array([0, 1, 2]), trans, 1.0, steps), 1.0)


def test_horizon_oracle_expects_momentum_to_reverse_in_stress():
    """On `realistic` momentum reverses in stress. The horizon oracle takes the regime's path in
    expectation: on stress dates it beats the regime-ignoring oracle (the one this market had until
    2026-12-07) at predicting the next h days' returns; the 1-day oracle and a market without the reversal
    are unchanged."""
    m = simulate(market_preset("realistic", seed=5, n_stocks=300, n_days=800))
    np.testing.assert_array_equal(rebuild_horizon_oracle(m), m.oracle)
    ignoring = rebuild_horizon_oracle(m, regime_aware=False)
    np.testing.assert_array_equal(ignoring[:, :, 0], m.oracle[:, :, 0])
    cs = np.vstack([np.zeros((1, m.returns.shape[1])), np.cumsum(m.returns, axis=0)])
    for j, h in enumerate(m.config.horizons[1:], start=1):
        t = np.nonzero(m.regime[: m.n_days - h] == STRESS_REGIME)[0]
        realised, ok = cs[t + h + 1] - cs[t + 1], m.listed[t]
        err_new = ((m.oracle[t, :, j] - realised)[ok] ** 2).sum()
        err_old = ((ignoring[t, :, j] - realised)[ok] ** 2).sum()
        assert err_new < err_old, h
    # the same market without the stress reversal: the regime leaves its oracle as it was
    dyn = m.config.dynamics.model_copy(update={"momentum_stress_multiplier": 1.0})
    steady = simulate(m.config.model_copy(update={"dynamics": dyn}))
    np.testing.assert_array_equal(rebuild_horizon_oracle(steady, regime_aware=False), steady.oracle)
