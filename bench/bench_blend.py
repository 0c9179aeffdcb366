"""Benchmark: the trained model, its own ridge start alone, and their equal blend, on the tuning markets'
selection windows (twenty-first sweep).

On realistic markets 11/12 the ridge start beat the trained epochs the default takes; on 13/14 the trained
epochs beat it (twentieth sweep), and validation cannot tell which in advance. The blend hedges: per date
and horizon, the mean of the two predictions' cross-sectional z-scores. No parameter is tuned.

Per market, one training (the defaults, one seed, ``--epochs``/``--patience``) and one linear-mode fit (the
ridge start as the defaults fit it, refitted through validation); both predict with their own (gated)
skip timing. Rows: selection-window mean daily RankIC per horizon and the four-horizon mean.

Thirty-first sweep: two composites keep the model's 1-day prediction and take the start (``start_long``) or
the blend (``blend_long``) at 5/10/20 days, and every row adds its agreement with the oracle per horizon
(``agree_{h}d``: mean daily RankIC against the true h-day expected return, ``report.oracle_agreement``).

Run: ./run shell, then python bench/bench_blend.py --preset realistic --n-stocks 1000 --market-seeds 11 12
"""

from __future__ import annotations

import time

import polars as pl
from bench_skip_timing import (
    add_scores,
    agreement_table,
    linear_model,
    run_sweep,
    trained_default,
)

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.horizons import HORIZONS
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_timing import timing_statistics
from atft_dagster.training.train import predict


def zscore_by_date(column: str) -> pl.Expr:
    col = pl.col(column)
    return (col - col.mean().over("date")) / col.std().over("date")


def predictions(model, data: PanelTensors, dates: list[int], cfg: TrainingConfig) -> pl.DataFrame:
    stats = timing_statistics(model, data, dates) if model.cfg.skip_timing_half_life > 0 else None
    return predict(model, data, dates, cfg.batch_dates, timing=stats)


def run_market(args, seed: int) -> list[dict]:
    src, data, cfg, split, model, t0 = trained_default(args, seed)
    linear = linear_model(data, cfg, split)
    fit_s = time.perf_counter() - t0
    dates = split.selection
    deep = predictions(model, data, dates, cfg)
    lin = predictions(linear, data, dates, cfg)
    keys = ["date", "code"]
    frame = deep.select(*keys, *[f"pred_{h}d" for h in HORIZONS], *[f"label_{h}d" for h in HORIZONS])
    frame = frame.join(
        lin.select(*keys, *[pl.col(f"pred_{h}d").alias(f"lin_{h}d") for h in HORIZONS]), on=keys
    )
    frame = frame.with_columns(
        *[
            ((zscore_by_date(f"pred_{h}d") + zscore_by_date(f"lin_{h}d")) / 2).alias(f"blend_{h}d")
            for h in HORIZONS
        ]
    )
    for name, prefix in (("start_long", "lin"), ("blend_long", "blend")):  # the 1 day stays the model's
        frame = frame.with_columns(
            pl.col(f"pred_{h}d" if h == 1 else f"{prefix}_{h}d").alias(f"{name}_{h}d") for h in HORIZONS
        )
    frame = frame.join(src.oracle(frame["date"].min(), frame["date"].max()), on=keys, how="left")
    day = frame["date"].to_numpy()
    rows = []
    for variant, prefix in VARIANTS:
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "variant": variant}
        row["fit_s"] = round(fit_s, 1)
        for h in HORIZONS:
            col = f"{prefix}_{h}d"
            row[f"agree_{h}d"] = oracle_agreement(
                frame, {col: col}, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
            )[col]
        rows.append(add_scores(row, frame, day, "selection", cfg, prefix))
    return rows


VARIANTS = (
    ("model", "pred"),
    ("start", "lin"),
    ("blend", "blend"),
    ("start_long", "start_long"),
    ("blend_long", "blend_long"),
)


def main() -> None:
    names = tuple(name for name, _ in VARIANTS)
    rows, seeds = run_sweep(run_market, names)
    agreement_table(rows, seeds, names)


if __name__ == "__main__":
    main()
