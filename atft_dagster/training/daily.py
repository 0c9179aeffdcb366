"""One trading day's predictions from a champion's checkpoints: scores, quantiles and the JPX-style
ranking, reading only the input window that day needs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import torch

from atft_dagster.features.registry import FeatureRegistry
from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.checkpoint import load_checkpoint
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict
from atft_dagster.training.skip_timing import timing_history


def predict_day(
    checkpoints: list[str],
    features: pl.DataFrame,
    registry: FeatureRegistry,
    graph: pl.DataFrame | None,
    day: date,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> pl.DataFrame:
    """Per stock trading on ``day``: ``pred_{h}d``, quantiles and ``rank`` (0 = best by the primary
    horizon's score; ties by code), sorted by rank."""
    cfg = TrainingConfig.from_recorded(load_checkpoint(Path(checkpoints[0]), "cpu")["config"])
    data, t = PanelTensors.for_day(
        features, registry, graph, day, cfg.horizons, cfg.seq_len, cfg.input_clip, device, timing_history(cfg)
    )
    preds, _ = ensemble_predict(checkpoints, data, [t], precision)
    preds = preds.drop([f"label_{h}d" for h in cfg.horizons])
    return preds.sort([f"pred_{cfg.primary_horizon}d", "code"], descending=[True, False]).with_columns(
        pl.int_range(pl.len()).cast(pl.Int32).alias("rank")
    )


def ranking_csv(preds: pl.DataFrame) -> str:
    """The JPX submission layout: Date, SecuritiesCode, Rank."""
    return preds.select(
        pl.col("date").dt.strftime("%Y-%m-%d").alias("Date"),
        pl.col("code").alias("SecuritiesCode"),
        pl.col("rank").alias("Rank"),
    ).write_csv()
