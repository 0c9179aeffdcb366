"""Benchmark: a graph-off ensemble member, weighted per horizon (sixteenth sweep, issue 12).

On every tuning market (walk-forward fold 0) three models are trained with the sweeps' protocol: graph on
with seeds s and s+1, graph off with seed s+1. Their selection- and test-window predictions are kept, and
rank averages are scored per horizon: the default ensemble (graph on s, s+1), graph on s alone, and the
variant (graph on s with the graph-off member at a fixed share per horizon). Only the selection window is
read for a choice; the test window is printed for the record.

Run: ./run shell, then python bench/bench_graph_blend.py --preset demo --market-seeds 11 12 --n-stocks 200
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from bench_throughput import inputs

from atft_dagster.evaluation.report import score_models
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict
from atft_dagster.training.train import config_folds, train

MEMBERS = {"on_s": (0, True), "off_s1": (1, False), "on_s1": (1, True)}
# Per-horizon share of the graph-off member (the rest on the graph-on members). "variant" is the one
# registered before any row; "third" is printed for information, never a candidate.
SHARES = {"variant": [0.0, 0.5, 0.5, 0.5], "third": [0.0, 1 / 3, 1 / 3, 1 / 3]}


def weighted_ranks(frames: dict[str, pl.DataFrame], weights: dict[str, float], h: int) -> pl.DataFrame:
    """Per (date, code): the weighted mean of members' per-date percentile ranks of ``pred_{h}d``."""
    total = sum(weights.values())
    parts = [
        frames[name].select(
            "date",
            "code",
            f"label_{h}d",
            ((pl.col(f"pred_{h}d").rank("average").over("date") / pl.len().over("date")) * (w / total)).alias(
                "p"
            ),
        )
        for name, w in weights.items()
        if w > 0
    ]
    return (
        pl.concat(parts)
        .group_by("date", "code", maintain_order=True)
        .agg(pl.col("p").sum().alias("pred"), pl.col(f"label_{h}d").first())
        .sort("date", "code")
    )


def combos(horizons: list[int]) -> dict[str, list[dict[str, float]]]:
    """Name -> per-horizon member weights."""
    out = {
        "on_s": [{"on_s": 1.0}] * len(horizons),
        "on_s+on_s1": [{"on_s": 1.0, "on_s1": 1.0}] * len(horizons),
        "off_s1": [{"off_s1": 1.0}] * len(horizons),
    }
    for name, shares in SHARES.items():
        out[f"on_s+off_s1:{name}"] = [{"on_s": 1 - a, "off_s1": a} for a in shares]
        out[f"on_s+on_s1+off_s1:{name}"] = [
            {"on_s": (1 - a) / 2, "on_s1": (1 - a) / 2, "off_s1": a} for a in shares
        ]
    return out


def run_market(args, seed: int) -> list[dict]:
    cfg = TrainingConfig(epochs=args.epochs, patience=args.patience)
    src, reg, feats, graph = inputs(market_preset(args.preset, seed=seed, n_stocks=args.n_stocks))
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    frames: dict[str, dict[str, pl.DataFrame]] = {"selection": {}, "test": {}}
    fit_s = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.members:
            k, on = MEMBERS[name]
            t0 = time.perf_counter()
            res = train(
                data,
                cfg.model_copy(update={"seed": cfg.seed + k, "use_graph": on}),
                split,
                Path(tmp) / name,
                {},
            )
            fit_s[name] = round(time.perf_counter() - t0, 1)
            for w in frames:
                frames[w][name] = ensemble_predict([res.best_checkpoint], data, getattr(split, w))[0]
            print(f"  {name}: {fit_s[name]} s, horizon epochs {res.horizon_epochs}", flush=True)
    rows = []
    for combo, weights in combos(cfg.horizons).items():
        if not all(m in args.members for w in weights for m, v in w.items() if v > 0):
            continue
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "combo": combo}
        for w in frames:
            for h, wh in zip(cfg.horizons, weights, strict=True):
                frame = weighted_ranks(frames[w], wh, h)
                rep, _ = score_models(frame, {"m": "pred"}, f"label_{h}d", cfg.min_stocks_per_date, h - 1)
                row[f"{w}_{h}d"] = round(rep["m"].rank_ic, 4)
            row[f"{w}_mean"] = round(float(np.mean([row[f"{w}_{h}d"] for h in cfg.horizons])), 4)
        row["fit_s"] = fit_s
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12])
    ap.add_argument("--n-stocks", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--members", nargs="+", default=list(MEMBERS), choices=list(MEMBERS))
    args = ap.parse_args()
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {args}", flush=True)
    for seed in args.market_seeds:
        run_market(args, seed)


if __name__ == "__main__":
    main()
