"""Typed configuration of the embedded synthetic TSE market."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


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
    horizons: tuple[int, ...] = (1, 5, 10, 20)

    def with_effects(self, **strengths: float) -> SyntheticMarketConfig:
        return self.model_copy(update={"effects": self.effects.model_copy(update=strengths)})
