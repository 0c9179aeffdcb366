"""Resources. ``market_source`` is one of three interchangeable sources: swap it to change where data
comes from (synthetic by default, J-Quants API, or a landing directory of files)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import Field

from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.sources import JQuantsSource, LandingFileSource, MarketSource, SyntheticSource


class MarketSourceResource(dg.ConfigurableResource):
    """Base of the market-data resources; ``source()`` returns the core :class:`MarketSource`."""

    def source(self) -> MarketSource:  # pragma: no cover - abstract
        raise NotImplementedError


class SyntheticMarketResource(MarketSourceResource):
    """The embedded synthetic TSE market. The fields override :class:`SyntheticMarketConfig`."""

    seed: int = 7
    n_stocks: int = 300
    start: str = "2022-01-04"
    n_days: int = Field(750, description="Trading days of history the demo ingests.")
    reversal: float = SyntheticMarketConfig().effects.reversal
    momentum: float = SyntheticMarketConfig().effects.momentum
    volume_shock: float = SyntheticMarketConfig().effects.volume_shock
    peer_lead_lag: float = SyntheticMarketConfig().effects.peer_lead_lag

    def market_config(self) -> SyntheticMarketConfig:
        base = SyntheticMarketConfig(
            seed=self.seed, n_stocks=self.n_stocks, start=date.fromisoformat(self.start), n_days=self.n_days
        )
        return base.with_effects(
            reversal=self.reversal,
            momentum=self.momentum,
            volume_shock=self.volume_shock,
            peer_lead_lag=self.peer_lead_lag,
        )

    def source(self) -> SyntheticSource:
        return SyntheticSource(self.market_config())


class JQuantsResource(MarketSourceResource):
    """J-Quants API v2. Bind ``api_key=dg.EnvVar("JQUANTS_API_KEY")``; the key is never logged."""

    api_key: str
    master_snapshot_days: int = 30

    def source(self) -> JQuantsSource:
        return JQuantsSource.from_api_key(self.api_key, master_snapshot_days=self.master_snapshot_days)


class LandingFilesResource(MarketSourceResource):
    """CSV/Parquet files (J-Quants v2 or JPX-Kaggle layout) in a landing directory."""

    landing_dir: str
    quarantine_dir: str | None = None

    def source(self) -> LandingFileSource:
        return LandingFileSource(
            Path(self.landing_dir), Path(self.quarantine_dir) if self.quarantine_dir else None
        )


class ProjectPaths(dg.ConfigurableResource):
    """Where the project keeps its data (Parquet tables, landing files, reports)."""

    data_dir: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "landing" / "_quarantine"
