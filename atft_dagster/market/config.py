"""Typed configuration of the embedded synthetic TSE market."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from atft_dagster.horizons import HORIZONS


class EffectStrengths(BaseModel):
    """Strengths of the predictable components of next-day returns. All zero => pure noise.

    With ``e`` the market- and sector-residual return of a stock and ``x`` its return in excess of the
    market, the expected return of day t+1 known at the close of day t is

        mu = - reversal * m(regime) * e_t                       (regime-dependent short-term reversal)
             + momentum * mean(x_{t-19..t})                     (medium-term momentum)
             + volume_shock * relu(v_t) * (e_t if e_t > 0 else volume_shock_down * e_t)
             + peer_lead_lag * mean_{j in peers(i)} e_{j,t}      (hidden network, not sectors)

    where ``v_t`` is abnormal log volume and ``m(regime)`` is 1 in calm and normal regimes and
    ``reversal_stress_multiplier`` in the stress regime (a non-linear effect a linear model misses).
    """

    model_config = ConfigDict(frozen=True)

    reversal: float = Field(0.06, ge=0)
    reversal_stress_multiplier: float = Field(3.0, ge=0)
    momentum: float = Field(0.2, ge=0)
    volume_shock: float = Field(0.05, ge=0)
    volume_shock_down: float = Field(-0.5, description="Multiplier of e_t on high-volume down days.")
    peer_lead_lag: float = Field(0.2, ge=0)

    def is_zero(self) -> bool:
        return self.reversal == self.momentum == self.volume_shock == self.peer_lead_lag == 0.0


class EffectDynamics(BaseModel):
    """How the effects vary over time, as real signals do (all off: constant strengths, the demo market).

    - Each effect's strength is multiplied by ``1 + a_t``, with ``a_t`` an AR(1) of stationary standard
      deviation ``strength_drift_vol`` and half-life ``strength_half_life`` days: strengths drift slowly
      and, when ``a_t < -1``, change sign for a while. The oracle knows ``a_t``; a model must infer it.
    - In the stress regime momentum is multiplied by ``momentum_stress_multiplier`` (below 0: it reverses).
    - Factor crashes: every day a zero-mean return ``g_t · z_i`` hits the stocks, where ``z_i`` is the
      cross-sectional z-score of the day's expected return and ``g_t`` has volatility ``signal_factor_vol``
      (Student-t, scaled by the regime). The oracle is unchanged (E[g] = 0) but its realised daily IC
      swings, and on a bad day turns deeply negative, as crowded real signals do.
    """

    model_config = ConfigDict(frozen=True)

    strength_drift_vol: float = Field(0.0, ge=0)
    strength_half_life: float = Field(60.0, gt=0)
    momentum_stress_multiplier: float = 1.0
    signal_factor_vol: float = Field(0.0, ge=0)

    def is_off(self) -> bool:
        return (
            self.strength_drift_vol == 0
            and self.signal_factor_vol == 0
            and self.momentum_stress_multiplier == 1
        )


class SyntheticMarketConfig(BaseModel):
    """Everything that defines the synthetic market. Same config => byte-identical output.

    The market is prefix-stable: every day draws from its own random stream, so the first n days of a
    longer market equal a shorter one. ``n_days`` is the history the demo ingests; the sources can serve
    later days too (that is how "new data lands").
    """

    model_config = ConfigDict(frozen=True)

    seed: int = 7
    n_stocks: int = Field(300, ge=10, le=9000)
    start: date = date(2022, 1, 4)
    n_days: int = Field(750, ge=30, description="Trading days of history (XTKS sessions from start).")

    # factor model (daily volatilities)
    market_drift: float = 0.0003
    market_vol: float = 0.009
    sector_vol: float = 0.006
    cluster_vol: float = Field(
        0.012,
        ge=0,
        description=(
            "Volatility of the hidden peer clusters' common factor. At 0.012 peers' residual returns "
            "correlate about 0.33, as industry peers do; at 0.006 (0.11) the network sits below the "
            "Marchenko-Pastur edge for 300 stocks x 750 days and a correlation graph finds few true peers."
        ),
    )
    idio_vol_median: float = 0.017
    idio_vol_dispersion: float = 0.35
    beta_mean: float = 1.0
    beta_std: float = 0.3
    t_dof: float = Field(4.0, gt=2.0, description="Student-t degrees of freedom of all shocks (fat tails).")
    garch_alpha: float = 0.08
    garch_beta: float = 0.88
    regime_vol: tuple[float, float, float] = (0.7, 1.0, 1.9)
    # calm / normal / stress; calm and stress exit to normal, normal to calm or stress
    regime_stay_prob: tuple[float, float, float] = (0.985, 0.975, 0.96)
    regime_normal_to_stress: float = Field(0.5, ge=0, le=1)

    effects: EffectStrengths = EffectStrengths()
    dynamics: EffectDynamics = EffectDynamics()

    # hidden peer network: cliques of this size, partly aligned with sectors
    peer_cluster_size: int = Field(8, ge=2)
    peer_sector_affinity: float = Field(0.5, ge=0, le=1)

    # prices and volume
    price_median: float = 1500.0
    price_dispersion: float = 0.9
    market_cap_median: float = 5e10
    market_cap_dispersion: float = 1.4
    daily_turnover_rate: float = 0.004
    volume_abs_return_sensitivity: float = 0.35
    volume_noise: float = 0.3
    volume_spike_prob: float = 0.03
    volume_spike_scale: float = 0.8
    overnight_share: float = 0.3
    intraday_range: float = 0.6

    # corporate and market events (per stock and day unless stated)
    split_prob: float = 0.0004
    halt_prob: float = 0.0008
    halt_continue_prob: float = 0.4
    initial_listed_fraction: float = Field(0.92, gt=0, le=1)
    listing_prob: float = 0.004
    delisting_prob: float = 0.00012
    reclassification_prob: float = 0.00004

    topix_base: float = 1800.0
    horizons: tuple[int, ...] = HORIZONS

    def with_effects(self, **strengths: float) -> SyntheticMarketConfig:
        return self.model_copy(update={"effects": self.effects.model_copy(update=strengths)})


# Named markets. ``demo``: strong, stable effects (easy; useful to see that the machinery learns).
# ``realistic``: calibrated on 1000 stocks to a 1-day oracle RankIC of 0.05-0.07 and a JPX daily-spread
# Sharpe of 0.3-0.6, with time-varying strengths and factor crashes (docs/benchmarks.md, "Market presets").
MARKET_PRESETS: dict[str, dict] = {
    "demo": {},
    "realistic": {
        "effects": {
            "reversal": 0.023,
            "reversal_stress_multiplier": 2.0,
            "momentum": 0.06,
            "volume_shock": 0.019,
            "peer_lead_lag": 0.075,
        },
        "dynamics": {
            "strength_drift_vol": 0.7,
            "strength_half_life": 60.0,
            "momentum_stress_multiplier": -1.0,
            "signal_factor_vol": 0.003,
        },
    },
}
PRESET_NAMES = tuple(MARKET_PRESETS)


def market_preset(name: str, **overrides) -> SyntheticMarketConfig:
    """The named market, with plain fields (seed, n_stocks, start, n_days, ...) overridden."""
    if name not in MARKET_PRESETS:
        raise ValueError(f"unknown market preset {name!r}: one of {PRESET_NAMES}")
    return SyntheticMarketConfig.model_validate({**MARKET_PRESETS[name], **overrides})


def pure_noise_market(**overrides) -> SyntheticMarketConfig:
    """The leakage canary: the demo market with no expected-return edge. Every effect is off and so is the
    market drift, whose beta premium (``beta * market_drift``) would otherwise be a priced exposure that a
    model is right to lean on; what is left is risk (market, sector, peer and idiosyncratic shocks) with
    the same expected return for every stock, so the oracle is zero and a ranking that scores clearly on
    held-out days has likely seen the future. (One edge remains for a rank metric: a compounded return's
    median falls with its volatility, worth about +0.016 RankIC at 20 days to a low-volatility ranking —
    docs/benchmarks.md, "The pure-noise canary rebuilt".)"""
    base = market_preset("demo", **{"market_drift": 0.0, **overrides})
    return base.with_effects(reversal=0.0, momentum=0.0, volume_shock=0.0, peer_lead_lag=0.0)
