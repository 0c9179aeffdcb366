"""The embedded synthetic TSE market (pure core)."""

from atft_dagster.market.config import (
    PRESET_NAMES,
    EffectDynamics,
    EffectStrengths,
    SyntheticMarketConfig,
    market_preset,
    pure_noise_market,
)
from atft_dagster.market.simulator import SyntheticMarket, cached_market, simulate

__all__ = [
    "PRESET_NAMES",
    "EffectDynamics",
    "EffectStrengths",
    "market_preset",
    "pure_noise_market",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "cached_market",
    "simulate",
]
