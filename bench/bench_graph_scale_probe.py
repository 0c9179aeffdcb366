"""Benchmark: stock-graph variants at two universe sizes, scored through the model's own ridge start (the
linear graph model) on the tuning markets' **selection window** (no test window is read), with the edges'
precision and recall against the synthetic market's hidden peer network.

Per market, universe and graph variant: build the graph, fit the ridge start on the train window of
walk-forward fold 0 at one fixed penalty (no choice is made inside the probe), score the selection
window's mean daily RankIC per horizon, and the 1-day oracle on the same rows. Criterion fixed before a
run: the mean over the four horizons, better on both tuning markets at both sizes.

The sector-residual graph (each residual minus its sector-mates' mean) was measured with commit 2685f1b,
which had that option, and lost at both sizes (docs/benchmarks.md, eleventh sweep); the option is gone.

Run: ./run shell, then python bench/bench_graph_scale_probe.py [--n-stocks 200 800] [--variants NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import polars as pl
from bench_graph_probe import hidden_graph
from bench_throughput import market_tables

from atft_dagster.evaluation.baselines import DailyRankIC
from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.linear_graph import NO_DEEP_PATH
from atft_dagster.training.skip_init import ridge_start
from atft_dagster.training.train import config_folds, predict

PENALTY = 3.0  # the tenth sweep's probe penalty, so that rows compare with its table
VARIANTS: dict[str, dict] = {
    "defaults (top_k 7, lookback 500, half-life 250)": {},
    "hidden peer network (ceiling)": {},
}
HIDDEN = "hidden peer network (ceiling)"


def edge_quality(graph: pl.DataFrame, peers: pl.DataFrame) -> tuple[float, float]:
    """(precision, recall) of the last rebuild's edges against the hidden peer network's edges among
    the stocks of that rebuild."""
    last = graph.filter(pl.col("date") == graph["date"].max()).select("src", "dst")
    nodes = pl.concat([last["src"], last["dst"]]).unique()
    true = peers.filter(pl.col("src").is_in(nodes.implode()) & pl.col("dst").is_in(nodes.implode())).select(
        "src", "dst"
    )
    hit = last.join(true, on=["src", "dst"], how="inner").height
    return hit / max(last.height, 1), hit / max(true.height, 1)


def point(seed: int, n_stocks: int, preset: str, variants: list[str]) -> list[dict]:
    cfg = TrainingConfig()
    src, panel, topix, reg, feats = market_tables(market_preset(preset, seed=seed, n_stocks=n_stocks))
    peers = src.peer_network().select("src", "dst")
    rows = []
    for name in variants:
        t0 = time.perf_counter()
        graph = build_stock_graph(panel, topix, GraphConfig(**VARIANTS[name]))
        if name == HIDDEN:
            graph = hidden_graph(src, graph)
        precision, recall = edge_quality(graph, peers)
        data = PanelTensors.for_model(feats, reg, graph, cfg)
        split = config_folds(data, cfg)[0]
        lin = cfg.model_copy(
            update={"use_graph": True, "input_skip": True, "skip_neighbour_mean": True, **NO_DEEP_PATH}
        )
        model = ATFTGATFAN(data.n_features, lin)
        ridge_start(model, data, split.train, PENALTY, cfg.batch_dates)
        frame = predict(model, data, split.selection, cfg.batch_dates, "fp32")
        frame = frame.join(
            src.oracle(frame["date"].min(), frame["date"].max()), on=["date", "code"], how="left"
        )
        score = DailyRankIC(frame["date"].to_numpy(), frame["label_1d"].to_numpy(), cfg.min_stocks_per_date)
        row = {"market_seed": seed, "n_stocks": n_stocks, "variant": name}
        for h in cfg.horizons:
            score = DailyRankIC(
                frame["date"].to_numpy(), frame[f"label_{h}d"].to_numpy(), cfg.min_stocks_per_date
            )
            row[f"{h}d"] = score(frame[f"pred_{h}d"].to_numpy())
            if h == 1:
                row["share_1d"] = row["1d"] / score(frame["oracle_1d"].to_numpy())
        row["mean"] = float(np.mean([row[f"{h}d"] for h in cfg.horizons]))
        row |= {"precision": precision, "recall": recall, "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12])
    ap.add_argument("--n-stocks", nargs="+", type=int, default=[200, 800])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    rows = [
        r
        for n in args.n_stocks
        for seed in args.market_seeds
        for r in point(seed, n, args.preset, args.variants)
    ]
    print(f"\n{args.preset}, selection window of fold 0, ridge start at penalty {PENALTY:g}")
    print(
        "\n| graph variant | stocks | mean (market " + " / ".join(map(str, args.market_seeds)) + ") | "
        "1-day share | precision | recall |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.n_stocks:
        for name in args.variants:
            rs = [r for r in rows if r["n_stocks"] == n and r["variant"] == name]
            print(
                f"| {name} | {n} | "
                + " / ".join(f"{r['mean']:.4f}" for r in rs)
                + " | "
                + " / ".join(f"{r['share_1d']:.2f}" for r in rs)
                + f" | {np.mean([r['precision'] for r in rs]):.2f} | {np.mean([r['recall'] for r in rs]):.2f} |"
            )


if __name__ == "__main__":
    main()
