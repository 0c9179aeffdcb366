"""The embedded synthetic TSE market (pure core)."""

from atft_dagster.market.config import EffectStrengths, SyntheticMarketConfig
from atft_dagster.market.simulator import SyntheticMarket, cached_market, simulate

__all__ = ["EffectStrengths", "SyntheticMarket", "SyntheticMarketConfig", "cached_market", "simulate"]
