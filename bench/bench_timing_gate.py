"""Benchmark: on which dates of a window the skip-timing gate times the 1-day head (``skip_timing_gate``).

The gate depends on the data and the config only, not on a model's weights (training/skip_timing.py, "Gate"),
so no model is trained: an untrained model supplies the skip's inputs. Prints, per market, the share of the
window's dates the gate times and the backtest's t-statistic where the window opens and closes. Used to say
which held-out figures a change of the gate's default leaves as they were (a share of 0 or 1 reproduces the
untimed or the timed row of an earlier run exactly); it reads no model's score.

Run: ./run shell, then python bench/bench_timing_gate.py --preset demo --n-stocks 200 --market-seeds 1001
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from bench_throughput import inputs

from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_timing import timing_statistics
from atft_dagster.training.train import config_folds

GATED = {"skip_timing_half_life": 20.0, "skip_timing_gate": True}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--market-seeds", nargs="+", type=int, required=True)
    ap.add_argument("--n-stocks", type=int, default=1000)
    ap.add_argument("--window", choices=("val", "selection", "test"), default="test")
    ap.add_argument("--overrides", default="{}", help="JSON of TrainingConfig fields (the gate's config)")
    args = ap.parse_args()
    cfg = TrainingConfig(**{**GATED, **json.loads(args.overrides)})
    for seed in args.market_seeds:
        t0 = time.perf_counter()
        _, reg, feats, graph = inputs(market_preset(args.preset, seed=seed, n_stocks=args.n_stocks))
        data = PanelTensors.for_model(feats, reg, graph, cfg)
        window = getattr(config_folds(data, cfg)[0], args.window)
        torch.manual_seed(0)
        gate = timing_statistics(ATFTGATFAN(data.n_features, cfg), data, window).gate
        on = [gate[t][0][1] > cfg.skip_timing_gate_min_t for t in window]
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "window": args.window}
        row |= {"dates": len(window), "timed_share": sum(on) / len(on)}
        row |= {"t_first": gate[window[0]][0][1], "t_last": gate[window[-1]][0][1]}
        row |= {"mean_gain_last": gate[window[-1]][0][0], "seconds": time.perf_counter() - t0}
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
