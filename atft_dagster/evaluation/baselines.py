"""Baselines scored on exactly the model's days and universe.

- Factors, as they are: momentum (20-day return) and short-term reversal (minus the 1-day return).
- Ridge and LightGBM on the model's inputs (same normalisation and clip) with per-date z-scored labels
  (same clip), fitted on the fold's training dates only. Each is tuned with the model's own discipline:
  LightGBM stops early on the validation window's mean daily RankIC, ridge's penalty and LightGBM's grid
  point are chosen on the selection window's mean daily RankIC, and the test window is only predicted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.features.normalise import NormaliserConfig, normalise, to_arrays
from atft_dagster.features.registry import FeatureRegistry

# A penalty this many times X'X's largest eigenvalue gives the large-penalty limit (weights ∝ X'y) within 1 %.
RIDGE_LIMIT_SCALE = 100.0


class BaselineConfig(BaseModel):
    """The learned baselines' search spaces and LightGBM's fixed settings."""

    model_config = ConfigDict(frozen=True)

    ridge_penalty_scales: list[float] = Field(
        default=[1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, RIDGE_LIMIT_SCALE],
        description="Ridge penalties as multiples of the largest eigenvalue of X'X on the training rows, so one "
        "grid fits any universe and history; at 100 the weights are those of the large-penalty limit "
        "(∝ X'y) within 1 %; a choice at an end of the grid short of a limit is flagged. Chosen on "
        "selection. Until 2026-11-28 the grid was absolute, 1 to 1e5, and the selection window chose its "
        "end on demo markets (docs/benchmarks.md).",
    )
    linear_graph_penalties: list[float] = Field(
        default=[0.1, 1.0, 10.0],
        description="Per-row ridge penalties of the linear graph baseline (inputs and their neighbours' mean); "
        "chosen on selection.",
    )
    lightgbm_num_leaves: list[int] = Field(default=[7, 31], description="Grid, chosen on selection.")
    lightgbm_min_child_samples: list[int] = Field(
        default=[200, 1000], description="Grid, chosen on selection."
    )
    lightgbm_learning_rate: float = Field(0.05, gt=0)
    lightgbm_max_rounds: int = Field(500, ge=1, description="Upper bound; validation stops it earlier.")
    lightgbm_early_stopping: int = Field(
        40, ge=1, description="Rounds without a better validation RankIC before stopping."
    )
    lightgbm_feature_fraction: float = Field(0.5, gt=0, le=1)
    lightgbm_bagging_fraction: float = Field(0.8, gt=0, le=1)
    lightgbm_threads: int = Field(
        2, ge=1, description="LightGBM's num_threads (was a literal 2 until 2026-11-29)."
    )

    def lightgbm_grid(self) -> list[dict[str, int]]:
        return [
            {"num_leaves": a, "min_child_samples": b}
            for a, b in itertools.product(self.lightgbm_num_leaves, self.lightgbm_min_child_samples)
        ]


@dataclass
class BaselineFit:
    """Predictions (one ``ridge_<h>d`` and ``lightgbm_<h>d`` column per horizon on the requested rows)
    and, per model and horizon, what was chosen and the figures it was chosen on."""

    predictions: pl.DataFrame
    choices: list[dict] = field(default_factory=list)


def label_z(df: pl.DataFrame, label: str, clip: float) -> np.ndarray:
    """Per-date z-score of ``label``, clipped; a date with zero or undefined spread gets 0 (not NaN)."""
    y = pl.col(label)
    sd = y.std().over("date")
    z = pl.when(sd > 0).then((y - y.mean().over("date")) / sd).otherwise(0.0)
    return df.select(z.clip(-clip, clip)).to_series().to_numpy()


class DailyRankIC:
    """Mean daily RankIC (``metrics.daily_ic``) of predictions against fixed labels, rows grouped by date once."""

    def __init__(self, dates: np.ndarray, label: np.ndarray, min_stocks: int):
        self.label, self.min_stocks = label, min_stocks
        order = np.argsort(dates, kind="stable")
        self.groups = np.split(order, np.flatnonzero(dates[order][1:] != dates[order][:-1]) + 1)

    def __call__(self, pred: np.ndarray) -> float:
        ics = daily_ic(
            [pred[g] for g in self.groups], [self.label[g] for g in self.groups], self.min_stocks, True
        )
        return float(np.nanmean(ics)) if np.isfinite(ics).any() else float("nan")


def factor_baselines(features: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Momentum (20-day return) and short-term reversal (minus the 1-day return) on ``keys``' rows."""
    f = features.select(
        "date", "code", pl.col("ret_20d").alias("momentum"), (-pl.col("ret_1d")).alias("reversal")
    )
    return keys.join(f, on=["date", "code"], how="left")


def grid_edge(best: int, n: int) -> str | None:
    """Which end of a grid of three or more values the choice is ("lower", "upper"; the optimum may lie
    beyond it), else None."""
    if n < 3:
        return None
    return "lower" if best == 0 else "upper" if best == n - 1 else None


def ridge_grid_edge(penalties: list[float], best: int, eigenvalues: tuple[float, float]) -> str | None:
    """grid_edge, except that an end at one of ridge's limits is no edge, as nothing lies beyond it: a largest
    penalty of at least RIDGE_LIMIT_SCALE x X'X's largest eigenvalue (weights ∝ X'y), or a smallest one of at
    most its smallest eigenvalue / RIDGE_LIMIT_SCALE (least squares); each within 1 %."""
    edge = grid_edge(best, len(penalties))
    low, high = eigenvalues
    if edge == "upper" and penalties[best] >= RIDGE_LIMIT_SCALE * high:
        return None
    if edge == "lower" and penalties[best] <= low / RIDGE_LIMIT_SCALE:
        return None
    return edge


def _ridge_path(
    x: np.ndarray, y: np.ndarray, scales: list[float]
) -> tuple[list[np.ndarray], list[float], tuple[float, float]]:
    """(ridge weights, penalty) for every penalty scale (a multiple of X'X's largest eigenvalue), and X'X's
    smallest and largest eigenvalues, from one eigendecomposition."""
    vals, vecs = np.linalg.eigh(x.T.astype(np.float64) @ x)
    proj = vecs.T @ (x.T.astype(np.float64) @ y)
    penalties = [r * float(vals.max()) for r in scales]
    return (
        [vecs @ (proj / (vals + lam)) for lam in penalties],
        penalties,
        (float(vals.min()), float(vals.max())),
    )


def _lightgbm_params(params: dict, cfg: BaselineConfig, seed: int) -> dict:
    """LightGBM's parameters: the config's fixed ones and a grid point's ``params``."""
    return {
        "objective": "regression",
        "learning_rate": cfg.lightgbm_learning_rate,
        "bagging_fraction": cfg.lightgbm_bagging_fraction,
        "bagging_freq": 1,
        "feature_fraction": cfg.lightgbm_feature_fraction,
        "metric": "None",  # only the validation RankIC below decides
        "seed": seed,
        "num_threads": cfg.lightgbm_threads,
        "verbosity": -1,
        **params,
    }


def _fit_lightgbm(train, xv, val_score: DailyRankIC, params: dict, cfg: BaselineConfig, seed: int):
    """LightGBM on the ``train`` Dataset, stopped at the round with the best validation mean daily RankIC."""
    import lightgbm as lgb

    valid = lgb.Dataset(xv, np.zeros(len(xv)), reference=train)
    booster = lgb.train(
        _lightgbm_params(params, cfg, seed),
        train,
        num_boost_round=cfg.lightgbm_max_rounds,
        valid_sets=[valid],
        feval=lambda pred, _data: ("rank_ic", val_score(pred), True),
        callbacks=[lgb.early_stopping(cfg.lightgbm_early_stopping, verbose=False)],
    )
    return booster


def learned_baselines(
    features: pl.DataFrame,
    registry: FeatureRegistry,
    windows: dict[str, list[date]],
    keys: pl.DataFrame,
    horizons: list[int],
    cfg: BaselineConfig | None = None,
    *,
    input_clip: float = 5.0,
    label_clip: float = 3.0,
    min_stocks: int = 20,
    seed: int = 0,
) -> BaselineFit:
    """Ridge and LightGBM per horizon. ``windows`` holds the fold's ``train``, ``val`` and ``selection``
    dates, and optionally ``refit``: the dates ridge is fitted on instead of ``train`` (the model's ridge
    start refits on train through validation; LightGBM stays on ``train``, since ``val`` stops it), and
    optionally ``deploy``: after every choice, both are refitted there at what they chose (ridge's penalty
    scale, LightGBM's grid point and rounds) and predict into ``ridge_deployed_<h>d`` and
    ``lightgbm_deployed_<h>d`` (the benchmark's "deployed at the test start"). Only their labels are read.
    ``keys`` (date, code) are the rows to predict (any window)."""
    import lightgbm as lgb

    cfg = cfg or BaselineConfig()
    z = normalise(features, registry, NormaliserConfig(clip=input_clip))
    names = registry.names
    part = {k: z.filter(pl.col("date").is_in(v)) for k, v in windows.items()}
    xk, _ = to_arrays(keys.join(z, on=["date", "code"], how="left"), names)
    out, choices = keys.clone(), []
    for h in horizons:
        label = f"target_{h}d"
        tr = part["train"].filter(pl.col(label).is_not_null())
        x, _ = to_arrays(tr, names)
        y = label_z(tr, label, label_clip)
        scorers, xs = {}, {}
        for w in ("val", "selection"):
            frame = part[w]
            xs[w], _ = to_arrays(frame, names)
            scorers[w] = DailyRankIC(frame["date"].to_numpy(), frame[label].to_numpy(), min_stocks)
        if "refit" in part:
            fit_rows = part["refit"].filter(pl.col(label).is_not_null())
            ridge, penalties, eigenvalues = _ridge_path(
                to_arrays(fit_rows, names)[0], label_z(fit_rows, label, label_clip), cfg.ridge_penalty_scales
            )
        else:
            ridge, penalties, eigenvalues = _ridge_path(x, y, cfg.ridge_penalty_scales)
        sel = [scorers["selection"](xs["selection"] @ w) for w in ridge]
        best = int(np.nanargmax(sel))
        choices.append(
            {
                "model": "ridge",
                "horizon": h,
                "penalty_scale": cfg.ridge_penalty_scales[best],
                "penalty": penalties[best],
                "selection_rank_ic": sel[best],
                "grid_edge": ridge_grid_edge(penalties, best, eigenvalues),
            }
        )
        dataset = lgb.Dataset(x, y, free_raw_data=False)
        fits = []
        for params in cfg.lightgbm_grid():
            m = _fit_lightgbm(dataset, xs["val"], scorers["val"], params, cfg, seed)
            fits.append(
                (scorers["selection"](m.predict(xs["selection"], num_iteration=m.best_iteration)), params, m)
            )
        sel_ic, params, lgbm = max(fits, key=lambda f: -np.inf if f[0] != f[0] else f[0])
        choices.append(
            {
                "model": "lightgbm",
                "horizon": h,
                **params,
                "rounds": int(lgbm.best_iteration),
                "val_rank_ic": float(lgbm.best_score["valid_0"]["rank_ic"]),
                "selection_rank_ic": sel_ic,
            }
        )
        out = out.with_columns(
            pl.Series(f"ridge_{h}d", xk @ ridge[best]),
            pl.Series(f"lightgbm_{h}d", lgbm.predict(xk, num_iteration=lgbm.best_iteration)),
        )
        if "deploy" in part:
            rows = part["deploy"].filter(pl.col(label).is_not_null())
            xd, yd = to_arrays(rows, names)[0], label_z(rows, label, label_clip)
            refit, _, _ = _ridge_path(xd, yd, [cfg.ridge_penalty_scales[best]])
            booster = lgb.train(
                _lightgbm_params(params, cfg, seed), lgb.Dataset(xd, yd), num_boost_round=lgbm.best_iteration
            )
            out = out.with_columns(
                pl.Series(f"ridge_deployed_{h}d", xk @ refit[0]),
                pl.Series(f"lightgbm_deployed_{h}d", booster.predict(xk)),
            )
    return BaselineFit(out, choices)
