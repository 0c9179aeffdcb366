"""Benchmark: the ridge baseline's penalty grid, on the held-out markets of the quality table.

Until 2026-11-28 the grid was absolute, 1 to 1e5, and the selection window chose 1e5 everywhere on demo
markets: the grid's end, not the data, made the choice (`ridge_grid_absolute_demo.log`: that grid, then one
widened to 1e8, whose end was chosen again). Penalties are now scales of X'X's largest eigenvalue, up to the
large-penalty limit. This script fits ridge on exactly the rows, windows and labels of `bench_model.py`
(walk-forward fold 0, the same market seeds) and prints, per horizon, the scale the selection window chose,
whether it sits at an end of the grid, and the test-window mean daily RankIC (Newey-West t). The test
figures are reported, never chosen on.

Run: ./run shell, then python bench/bench_ridge_grid.py [--presets demo] [--n-stocks 200]
"""

from __future__ import annotations

import argparse
import platform
from datetime import datetime

import numpy as np
import polars as pl
from bench_model import bench_market  # bench/ is the script's folder, so on sys.path
from bench_throughput import inputs

from atft_dagster.evaluation.baselines import BaselineConfig, learned_baselines
from atft_dagster.evaluation.report import score_models
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.linear_graph import linear_graph_baseline
from atft_dagster.training.train import config_folds

# LightGBM is fitted by the same call but not read here: one round of one grid point keeps it cheap.
NO_LIGHTGBM = {"lightgbm_num_leaves": [3], "lightgbm_min_child_samples": [200], "lightgbm_max_rounds": 1}


def market_rows(
    preset: str, seed: int, n_stocks: int, n_days: int, grids: dict[str, list[float]]
) -> list[dict]:
    cfg = TrainingConfig()
    _, reg, feats, graph = inputs(bench_market(preset, seed, n_stocks, n_days))
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    # the model's own rows on the selection and test windows (what bench_model scores every model on)
    keys, _ = linear_graph_baseline(data, cfg, split, [1.0], cfg.min_stocks_per_date)
    keys = keys.select("date", "code")
    windows = {w: [data.dates[t] for t in getattr(split, w)] for w in ("train", "val", "selection")}
    test_dates = [data.dates[t] for t in split.test]
    labels = feats.select("date", "code", *[f"target_{h}d" for h in cfg.horizons])
    rows = []
    for name, grid in grids.items():
        fit = learned_baselines(
            feats,
            reg,
            windows,
            keys,
            cfg.horizons,
            BaselineConfig(ridge_penalty_scales=grid, **NO_LIGHTGBM),
            input_clip=cfg.input_clip,
            label_clip=cfg.label_clip,
            min_stocks=cfg.min_stocks_per_date,
            seed=cfg.seed,
        )
        test = fit.predictions.filter(pl.col("date").is_in(test_dates)).join(labels, on=["date", "code"])
        for c in (c for c in fit.choices if c["model"] == "ridge"):
            h = c["horizon"]
            rep, _ = score_models(
                test, {"ridge": f"ridge_{h}d"}, f"target_{h}d", cfg.min_stocks_per_date, h - 1
            )
            row = {
                "preset": preset,
                "seed": seed,
                "grid": name,
                "horizon": h,
                "scale": c["penalty_scale"],
                "edge": c["grid_edge"],
            }
            row |= {
                "selection": c["selection_rank_ic"],
                "test": rep["ridge"].rank_ic,
                "t": rep["ridge"].rank_ic_t,
            }
            print(row, flush=True)
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["demo"])
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[1001, 1002, 1003])
    ap.add_argument("--n-stocks", type=int, default=200)
    ap.add_argument("--n-days", type=int, default=750)
    args = ap.parse_args()
    grids = {"default": BaselineConfig().ridge_penalty_scales}
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}", flush=True)
    rows = [
        r
        for p in args.presets
        for s in args.market_seeds
        for r in market_rows(p, s, args.n_stocks, args.n_days, grids)
    ]
    for preset in args.presets:
        print(f"\n**{preset}**, {args.n_stocks} stocks, seeds {args.market_seeds}\n")
        print(
            "| grid | horizon | scales chosen (end of grid?) | selection | test RankIC (mean ± s.d.) | NW t |\n|---|---|---|---|---|---|"
        )
        for name in grids:
            for h in sorted({r["horizon"] for r in rows}):
                rs = [r for r in rows if r["preset"] == preset and r["grid"] == name and r["horizon"] == h]
                test = np.array([r["test"] for r in rs])
                chosen = ", ".join(f"{r['scale']:g}" + (f" ({r['edge']})" if r["edge"] else "") for r in rs)
                print(
                    f"| {name} | {h}d | {chosen} | "
                    f"{np.mean([r['selection'] for r in rs]):.4f} | {test.mean():.4f} ± {test.std(ddof=1):.4f} | "
                    f"{np.mean([r['t'] for r in rs]):.1f} |"
                )


if __name__ == "__main__":
    main()
