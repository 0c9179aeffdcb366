"""Baselines scored on exactly the model's test days and universe: momentum, short-term reversal, ridge
and LightGBM on the same features (fitted on the model's training dates only)."""

from __future__ import annotations

import numpy as np
import polars as pl

from atft_dagster.features.normalise import normalise, to_arrays
from atft_dagster.features.registry import FeatureRegistry

RIDGE_PENALTY = 1000.0


def _label_z(df: pl.DataFrame, label: str, clip: float = 3.0) -> np.ndarray:
    z = (pl.col(label) - pl.col(label).mean().over("date")) / pl.col(label).std().over("date")
    return df.select(z.clip(-clip, clip)).to_series().to_numpy()


def factor_baselines(features: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Momentum (20-day return) and short-term reversal (minus the 1-day return) on ``keys``' rows."""
    f = features.select(
        "date", "code", pl.col("ret_20d").alias("momentum"), (-pl.col("ret_1d")).alias("reversal")
    )
    return keys.join(f, on=["date", "code"], how="left")


def learned_baselines(
    features: pl.DataFrame,
    registry: FeatureRegistry,
    train_dates: list,
    keys: pl.DataFrame,
    horizons: list[int],
    lgbm_rounds: int = 200,
    seed: int = 0,
) -> pl.DataFrame:
    """Ridge and LightGBM per horizon, fitted on ``train_dates`` (z-scored labels), predicting ``keys``."""
    import lightgbm as lgb

    z = normalise(features, registry)
    train = z.filter(pl.col("date").is_in(train_dates))
    test = keys.join(z, on=["date", "code"], how="left")
    xt, _ = to_arrays(test, registry.names)
    out = keys.clone()
    for h in horizons:
        label = f"target_{h}d"
        tr = train.filter(pl.col(label).is_not_null())
        x, _ = to_arrays(tr, registry.names)
        y = _label_z(tr, label)
        w = np.linalg.solve(x.T @ x + RIDGE_PENALTY * np.eye(x.shape[1]), x.T @ y)
        model = lgb.LGBMRegressor(
            n_estimators=lgbm_rounds,
            learning_rate=0.05,
            num_leaves=31,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.5,
            random_state=seed,
            verbose=-1,
            n_jobs=2,
        )
        model.fit(x, y)
        out = out.with_columns(
            pl.Series(f"ridge_{h}d", xt @ w), pl.Series(f"lightgbm_{h}d", model.predict(xt))
        )
    return out
