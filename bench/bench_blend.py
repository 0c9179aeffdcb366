"""Benchmark: the trained model, its own ridge start alone, and their equal blend, on the tuning markets'
selection windows (twenty-first sweep).

On realistic markets 11/12 the ridge start beat the trained epochs the default takes; on 13/14 the trained
epochs beat it (twentieth sweep), and validation cannot tell which in advance. The blend hedges: per date
and horizon, the mean of the two predictions' cross-sectional z-scores. No parameter is tuned.

Per market, one training (the defaults, one seed, ``--epochs``/``--patience``) and one linear-mode fit (the
ridge start as the defaults fit it, refitted through validation); both predict with their own (gated)
skip timing. Rows: selection-window mean daily RankIC per horizon and the four-horizon mean.

Run: ./run shell, then python bench/bench_blend.py --preset realistic --n-stocks 1000 --market-seeds 11 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl
from bench_ridge_cv import print_header
from bench_skip_timing import add_scores, linear_model
from bench_throughput import market_tables

from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.horizons import HORIZONS
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_timing import timing_statistics
from atft_dagster.training.train import config_folds, load_model, predict, train


def zscore_by_date(column: str) -> pl.Expr:
    col = pl.col(column)
    return (col - col.mean().over("date")) / col.std().over("date")


def predictions(model, data: PanelTensors, dates: list[int], cfg: TrainingConfig) -> pl.DataFrame:
    stats = timing_statistics(model, data, dates) if model.cfg.skip_timing_half_life > 0 else None
    return predict(model, data, dates, cfg.batch_dates, timing=stats)


def run_market(args, seed: int) -> list[dict]:
    src, panel, topix, reg, feats = market_tables(
        market_preset(args.preset, seed=seed, n_stocks=args.n_stocks)
    )
    cfg = TrainingConfig(epochs=args.epochs, patience=args.patience, ensemble_seeds=1)
    data = PanelTensors.for_model(feats, reg, build_stock_graph(panel, topix, GraphConfig()), cfg)
    split = config_folds(data, cfg)[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = train(data, cfg, split, Path(tmp), {})
        model = load_model(res.best_checkpoint)[0]
    print(json.dumps({"market_seed": seed, "epochs": res.horizon_epochs}), flush=True)
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
    frame = frame.join(src.oracle(frame["date"].min(), frame["date"].max()), on=keys, how="left")
    day = frame["date"].to_numpy()
    rows = []
    for variant, prefix in (("model", "pred"), ("start", "lin"), ("blend", "blend")):
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "variant": variant}
        row["fit_s"] = round(fit_s, 1)
        rows.append(add_scores(row, frame, day, "selection", cfg, prefix))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12, 13, 14])
    ap.add_argument("--n-stocks", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=2)
    args = ap.parse_args()
    if {1001, 1002, 1003, 1004, 1005, 1006, 1007} & set(args.market_seeds):
        ap.error("held-out markets are not read by a sweep")
    print_header()
    rows = [r for seed in args.market_seeds for r in run_market(args, seed)]
    seeds = args.market_seeds
    print(f"\n{args.preset}, {args.n_stocks} stocks: selection window, market " + " / ".join(map(str, seeds)))
    print("\n| variant | 1d | 5d | 10d | 20d | **mean** |")
    print("|---|---|---|---|---|---|")
    for name in ("model", "start", "blend"):
        rs = {r["market_seed"]: r for r in rows if r["variant"] == name}
        cells = [" / ".join(f"{rs[s][f'selection_{h}d']:.4f}" for s in seeds) for h in HORIZONS]
        mean = " / ".join(f"{rs[s]['selection_mean']:.4f}" for s in seeds)
        print(f"| {name} | " + " | ".join(cells) + f" | **{mean}** |")


if __name__ == "__main__":
    main()
