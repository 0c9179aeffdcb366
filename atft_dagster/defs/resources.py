"""Resources. ``market_source`` is one of three interchangeable sources: swap it to change where data
comes from (synthetic by default, J-Quants API, or a landing directory of files)."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
from pydantic import Field

from atft_dagster.calendar import TIMEZONE
from atft_dagster.market import PRESET_NAMES, SyntheticMarketConfig, market_preset
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.sources import JQuantsSource, LandingFileSource, MarketSource, SyntheticSource
from atft_dagster.sources.files import QuoteLimits
from atft_dagster.storage import remove_stale_temp_files

_MARKET_DEFAULTS = SyntheticMarketConfig.model_fields  # the resource's defaults are the core's


class MarketSourceResource(dg.ConfigurableResource):
    """Base of the market-data resources; ``source()`` returns the core :class:`MarketSource`."""

    def source(self) -> MarketSource:  # pragma: no cover - abstract
        raise NotImplementedError

    def oracle(self, start: date, end: date) -> pl.DataFrame | None:
        """The true expected returns over [start, end], where the source knows them (synthetic only)."""
        return None


class SyntheticMarketResource(MarketSourceResource):
    """The embedded synthetic TSE market: a named preset (``demo``: strong, stable effects; ``realistic``:
    calibrated to real-market difficulty) with the fields below overriding it. An effect left empty keeps
    the preset's strength."""

    preset: str = Field(
        "demo", pattern=f"^({'|'.join(PRESET_NAMES)})$", description=f"One of {', '.join(PRESET_NAMES)}."
    )
    seed: int = _MARKET_DEFAULTS["seed"].default
    n_stocks: int = _MARKET_DEFAULTS["n_stocks"].default
    start: str = str(_MARKET_DEFAULTS["start"].default)
    n_days: int = Field(
        _MARKET_DEFAULTS["n_days"].default, description="Trading days of history the demo ingests."
    )
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

    def oracle(self, start: date, end: date) -> pl.DataFrame:
        return self.source().oracle(start, end)


class JQuantsResource(MarketSourceResource):
    """J-Quants API v2. Bind ``api_key=dg.EnvVar("JQUANTS_API_KEY")``; the key is never logged."""

    api_key: str
    base_url: str | None = Field(
        None,
        description="The API's base URL (…/v2); empty = J-Quants' own. Point it at a proxy or a stand-in.",
    )
    master_snapshot_days: int = Field(30, gt=0, description="Days between the equity-master snapshots read.")
    workers: int = Field(
        1, ge=1, description="Sessions of daily bars requested at once (mind your plan's rate limit)."
    )
    max_pages: int = Field(1000, ge=1, description="Pages followed per request before it is an error.")

    def source(self) -> JQuantsSource:
        return JQuantsSource.from_api_key(
            self.api_key,
            base_url=self.base_url or None,
            max_pages=self.max_pages,
            master_snapshot_days=self.master_snapshot_days,
            workers=self.workers,
            progress=sys.stderr.isatty(),
        )


class LandingFilesResource(MarketSourceResource):
    """CSV/Parquet files (J-Quants v2 or JPX-Kaggle layout) in a landing directory."""

    landing_dir: str
    quarantine_dir: str | None = None

    max_price: float = Field(1e9, gt=0, description="Quote rows priced above this (JPY) are quarantined.")

    def source(self) -> LandingFileSource:
        return LandingFileSource(
            Path(self.landing_dir),
            Path(self.quarantine_dir) if self.quarantine_dir else None,
            limits=landing_limits(self.max_price),
        )


def landing_limits(max_price: float = QuoteLimits.max_price) -> QuoteLimits:
    """Today's bounds for landed quotes: no session after today in Tokyo."""
    return QuoteLimits(max_price=max_price, not_after=datetime.now(ZoneInfo(TIMEZONE)).date())


class ProjectPaths(dg.ConfigurableResource):
    """Where the project keeps its data (Parquet tables, landing files, reports)."""

    data_dir: str
    stale_temp_hours: float = Field(
        6.0,
        gt=0,
        description="At the start of every run, temporary files of interrupted atomic writes older than this "
        "are deleted from the data directory.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        removed = remove_stale_temp_files(self.root, self.stale_temp_hours * 3600)
        if removed and context.log:
            context.log.info(
                f"removed {len(removed)} stale temporary file(s): {[str(p) for p in removed[:5]]}"
            )

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def layout(self) -> DataLayout:
        """Every folder and file name under the data directory."""
        return DataLayout(self.root)
