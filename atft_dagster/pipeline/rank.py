"""One trading day's ranking from the champion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl
import torch

from atft_dagster.features.registry import FeatureRegistry
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import ChampionState
from atft_dagster.training.daily import predict_day, ranking_csv


class NoFeaturesForDay(ValueError):
    pass


@dataclass(frozen=True)
class DailyRanking:
    day: date
    predictions: pl.DataFrame  # per stock: pred_{h}d, quantiles, rank (0 = best)
    csv: str  # JPX layout: Date, SecuritiesCode, Rank
    members: list[str]
    timing: str  # how skip timing's pass ran ("" when timing is off)
    checkpoints: str = ""  # which of the champion's checkpoints ranked the day, and why


def rank_day(
    champion: ChampionState,
    layout: DataLayout,
    features: pl.DataFrame,
    registry: FeatureRegistry,
    graph: pl.DataFrame | None,
    day: date,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> DailyRanking:
    """The champion's seed ensemble scores every stock trading on ``day`` (its deployed checkpoints from its
    data's last date on: ``ChampionState.members_for``)."""
    have = features["date"].unique()
    if day not in set(have.to_list()):
        raise NoFeaturesForDay(
            f"no enriched features for {day}: ingest that trading day first "
            f"(features cover {have.min()} .. {have.max()})"
        )
    members, why = champion.members_for(layout, day)
    notes: list[str] = []
    preds = predict_day(members, features, registry, graph, day, device, precision, layout.timing_dir, notes)
    return DailyRanking(day, preds, ranking_csv(preds), members, "; ".join(notes), why)
