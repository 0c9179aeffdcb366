"""Input normalisation for models, fitted on nothing but the date itself (or its past).

Stock-level features: per-date cross-sectional robust z-score, (x - median) / (1.4826 MAD), clipped.
Date-level features (market, calendar) are constant across stocks on a date, so they are z-scored
against their own trailing window of past dates instead. Missing values become 0 with a validity mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from atft_dagster.features.definitions import MAD_SCALE
from atft_dagster.features.registry import FeatureRegistry, Scope


@dataclass(frozen=True)
class NormaliserConfig:
    clip: float = 5.0
    date_feature_window: int = 250
    date_feature_min_periods: int = 20


def normalise(
    df: pl.DataFrame,
    registry: FeatureRegistry,
    cfg: NormaliserConfig = NormaliserConfig(),
    from_date: date | None = None,
) -> pl.DataFrame:
    """Same columns; features normalised (Float32, nulls kept for the mask). With ``from_date`` only the rows
    from that date on are returned (and normalised); earlier rows still feed the date-level windows."""
    stock = [f.name for f in registry.features if f.scope == Scope.STOCK]
    dated = [f.name for f in registry.features if f.scope == Scope.DATE]
    rows = df if from_date is None else df.filter(pl.col("date") >= from_date)
    # medians first, as columns: a window nested in a window is evaluated group by group
    out = rows.with_columns([pl.col(n).median().over("date").alias(f"_med_{n}") for n in stock])
    exprs = []
    for n in stock:
        dev = pl.col(n) - pl.col(f"_med_{n}")
        mad = dev.abs().median().over("date")
        z = (
            pl.when(mad > 0)
            .then(dev / (MAD_SCALE * mad))
            .otherwise(pl.when(pl.col(n).is_not_null()).then(0.0))
        )
        exprs.append(z.clip(-cfg.clip, cfg.clip).cast(pl.Float32).alias(n))
    out = out.with_columns(exprs).drop([f"_med_{n}" for n in stock])
    if dated:
        per_date = df.select("date", *dated).unique("date").sort("date")
        w, mp = cfg.date_feature_window, cfg.date_feature_min_periods
        zs = per_date.select(
            "date",
            *[
                pl.when(pl.col(n).rolling_std(w, min_samples=mp) > 0)
                .then(
                    (pl.col(n) - pl.col(n).rolling_mean(w, min_samples=mp))
                    / pl.col(n).rolling_std(w, min_samples=mp)
                )
                .otherwise(0.0)
                .clip(-cfg.clip, cfg.clip)
                .cast(pl.Float32)
                .alias(n)
                for n in dated
            ],
        )
        out = out.drop(dated).join(zs, on="date", how="left").select(df.columns)
    return out


def to_arrays(df: pl.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as 0, validity mask), both (rows, features)."""
    x = df.select(names).to_numpy().astype(np.float32)
    mask = np.isfinite(x)
    return np.where(mask, x, 0.0).astype(np.float32), mask
