"""Benchmark: what the pure-noise canary still rewards — volatility drag in the ranks of compounded returns.

On `pure_noise` every stock's expected simple return is the same, but an h-day label compounds h daily
returns, and the median of a compounded return falls with its variance (about ``-h sigma^2 / 2``). A RankIC
scores ranks, so it rewards a low-volatility ranking at long horizons even here. This script measures that on
the canary's calibration markets (2001-2010 by default; no model, nothing fitted): the test-window mean daily
RankIC of three low-volatility rankings per market and horizon, then mean ± s.d. over the markets, the t
over markets (markets are independent) and how many were positive. Nothing here is a choice.
Run: python bench/bench_vol_drag.py [--market-seeds 2001 ... 2010] [--n-stocks 100]
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
from bench_model import bench_market, canary_window  # bench/ is the script's folder, so on sys.path
from bench_throughput import inputs

from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds

RANKINGS = {
    "low_vol_60d": -pl.col("vol_60d"),
    "low_idio_vol_60d": -pl.col("idio_vol_60d"),
    "low_vol_20d": -pl.col("vol_20d"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--market-seeds", nargs="+", type=int, default=list(range(2001, 2011)))
    ap.add_argument("--n-stocks", type=int, default=100)
    args = ap.parse_args()
    cfg, n_days, start = canary_window(TrainingConfig(), 750, None)
    res: dict[tuple[str, int], list[float]] = {(c, h): [] for c in RANKINGS for h in cfg.horizons}
    for seed in args.market_seeds:
        _, reg, feats, graph = inputs(bench_market("pure_noise", seed, args.n_stocks, n_days, start))
        data = PanelTensors.for_model(feats, reg, graph, cfg, "cpu")
        days = [data.dates[i] for i in config_folds(data, cfg)[0].test]
        test = feats.filter(pl.col("date").is_in(days)).sort("date", "code").with_columns(**RANKINGS)
        parts = test.partition_by("date", maintain_order=True)
        cells = []
        for c in RANKINGS:
            for h in cfg.horizons:
                label = [p[f"target_{h}d"].to_numpy() for p in parts]
                res[(c, h)].append(
                    float(np.nanmean(daily_ic([p[c].to_numpy() for p in parts], label, 20, True)))
                )
            cells.append(f"{c} " + " / ".join(f"{res[(c, h)][-1]:+.4f}" for h in cfg.horizons))
        print(f"{seed}: " + "; ".join(cells), flush=True)
    print(f"\n| ranking | {' | '.join(f'{h}d' for h in cfg.horizons)} |\n|---|" + "---|" * len(cfg.horizons))
    for c in RANKINGS:
        cells = []
        for h in cfg.horizons:
            x = np.array(res[(c, h)])
            t = x.mean() / (x.std(ddof=1) / np.sqrt(len(x)))
            cells.append(f"{x.mean():+.4f} ± {x.std(ddof=1):.4f} (t {t:+.2f}, {int((x > 0).sum())}/{len(x)})")
        print(f"| {c} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
