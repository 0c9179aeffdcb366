"""The embedded synthetic market as a source (the default; no account, no network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from atft_dagster.calendar import trading_days
from atft_dagster.market import SyntheticMarket, SyntheticMarketConfig, cached_market
from atft_dagster.sources.base import calendar_frame
from atft_dagster.sources.schema import DailyQuotes, IndexBars, SectorMaster, validate


@dataclass
class SyntheticSource:
    """Serves any trading day from ``config.start`` on; the market is prefix-stable, so days past the
    configured history are the same days the landing command writes."""

    config: SyntheticMarketConfig = field(default_factory=SyntheticMarketConfig)
    name: str = "synthetic"

    def market(self, through: date | None = None) -> SyntheticMarket:
        n = self.config.n_days
        if through is not None and through >= self.config.start:
            n = max(n, len(trading_days(self.config.start, through)))
        return cached_market(self.config.model_dump_json(), n)

    def history_days(self) -> list[date]:
        return self.market().days

    def daily_quotes(self, start: date, end: date) -> pl.DataFrame:
        q = self.market(end).quotes_frame()
        return validate(q.filter(pl.col("date").is_between(start, end)), DailyQuotes, self.name)

    def sector_master(self, as_of: date) -> pl.DataFrame:
        master = self.market(as_of).sector_master_frame().filter(pl.col("valid_from") <= as_of)
        # an interval that ends after as_of is still open as far as as_of can know
        master = master.with_columns(
            pl.when(pl.col("valid_to") > as_of).then(None).otherwise(pl.col("valid_to")).alias("valid_to")
        )
        return validate(master, SectorMaster, self.name)

    def topix(self, start: date, end: date) -> pl.DataFrame:
        t = self.market(end).topix_frame()
        return validate(t.filter(pl.col("date").is_between(start, end)), IndexBars, self.name)

    def calendar(self, start: date, end: date) -> pl.DataFrame:
        return calendar_frame(start, end, trading_days(start, end))

    # ---- ground truth (never read by features or models) ---------------------------------------
    def oracle(self, start: date, end: date) -> pl.DataFrame:
        return self.market(end).oracle_frame().filter(pl.col("date").is_between(start, end))

    def peer_network(self) -> pl.DataFrame:
        return self.market().peer_network_frame()
