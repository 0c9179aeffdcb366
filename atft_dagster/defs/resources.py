"""Resources. ``market_source`` is one of three interchangeable sources: swap it to change where data
comes from (synthetic by default, J-Quants API, or a landing directory of files)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
from pydantic import Field

from atft_dagster.market import PRESET_NAMES, SyntheticMarketConfig, market_preset
from atft_dagster.sources import JQuantsSource, LandingFileSource, MarketSource, SyntheticSource


class MarketSourceResource(dg.ConfigurableResource):
    """Base of the market-data resources; ``source()`` returns the core :class:`MarketSource`."""

    def source(self) -> MarketSource:  # pragma: no cover - abstract
        raise NotImplementedError


class SyntheticMarketResource(MarketSourceResource):
    """The embedded synthetic TSE market: a named preset (``demo``: strong, stable effects; ``realistic``:
    calibrated to real-market difficulty) with the fields below overriding it. An effect left empty keeps
    the preset's strength."""

    preset: str = Field(
        "demo", pattern=f"^({'|'.join(PRESET_NAMES)})$", description=f"One of {', '.join(PRESET_NAMES)}."
    )
    seed: int = 7
    n_stocks: int = 300
    start: str = "2022-01-04"
    n_days: int = Field(750, description="Trading days of history the demo ingests.")
    reversal: float | None = Field(None, description="Effect strength; empty = the preset's.")
    momentum: float | None = Field(None, description="Effect strength; empty = the preset's.")
    volume_shock: float | None = Field(None, description="Effect strength; empty = the preset's.")
    peer_lead_lag: float | None = Field(None, description="Effect strength; empty = the preset's.")

    def market_config(self) -> SyntheticMarketConfig:
        base = market_preset(
            self.preset,
            seed=self.seed,
            n_stocks=self.n_stocks,
            start=date.fromisoformat(self.start),
            n_days=self.n_days,
        )
        overrides = {
            k: v
            for k, v in {
                "reversal": self.reversal,
                "momentum": self.momentum,
                "volume_shock": self.volume_shock,
                "peer_lead_lag": self.peer_lead_lag,
            }.items()
            if v is not None
        }
        return base.with_effects(**overrides) if overrides else base

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
