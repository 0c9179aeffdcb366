"""Benchmark: which stock-graph config carries the most signal into the linear graph model, on the tuning
markets' selection windows (issue: model quality).

For each `GraphConfig` variant, ridge on [x_L, m_L] (the last day's inputs and their neighbours' mean with
edge weight max(corr, 0)^2, i.e. the model's input skip / the `linear_graph` baseline) is fitted per
horizon on the train window of walk-forward fold 0 and scored on the selection window (mean daily
RankIC); the penalty is chosen per horizon on the selection window, as the baseline does. The test window
is never read. Criterion fixed before the run: the mean over the four horizons and the tuning markets.

Run: ./run shell, then python bench/bench_graph_probe.py [--preset demo] [--market-seeds 11 12]
"""

from __future__ import annotations

import json
import time

import numpy as np
import polars as pl
from bench_linear_probe import design, mean_rank_ic, stacked, tuning_market_args
from bench_throughput import market_tables

from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.sources import SyntheticSource
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds

VARIANTS: dict[str, dict] = {
    "default (lookback 250, half-life 125, top_k 10)": {},
    "top_k 5": {"top_k": 5},
    "top_k 20": {"top_k": 20},
    "top_k 30": {"top_k": 30},
    "lookback 120, half-life 60": {"lookback": 120, "half_life": 60.0},
    "lookback 500, half-life 250": {"lookback": 500, "half_life": 250.0},
    "equal weights (no half-life)": {"half_life": None},
    "no shrinkage": {"shrinkage": 0.0},
}
# the ceiling: the synthetic market's hidden peer clusters as the graph (no real market has it)
HIDDEN = "hidden peer clusters (ceiling, synthetic only)"
PENALTIES = (1e3, 1e4, 1e5, 3e5)
POWER = 2.0  # the model's neighbour_weight_power


def hidden_graph(src: SyntheticSource, like: pl.DataFrame) -> pl.DataFrame:
    """The hidden peer network on every rebuild date of ``like``, each edge with corr 1 and no flags."""
    peers = src.peer_network().select("src", "dst")
    g = like.select("date").unique().join(peers, how="cross").with_columns(pl.lit(1.0).alias("corr"))
    flags = [c for c in like.columns if c not in g.columns]
    g = g.with_columns([pl.lit(0).cast(like.schema[c]).alias(c) for c in flags])
    return g.select(like.columns).cast(dict(like.schema))


def probe(data: PanelTensors, cfg: TrainingConfig) -> dict[str, float]:
    """Per horizon, the selection-window RankIC of the best penalty."""
    split = config_folds(data, cfg)[0]
    train = [design(data, t, POWER) for t in split.train]
    select = [design(data, t, POWER) for t in split.selection]
    out = {}
    for j, h in enumerate(cfg.horizons):
        x, y = stacked(train, j, cfg.label_clip)
        gram, xty = x.T @ x, x.T @ y
        fits = [np.linalg.solve(gram + lam * np.eye(x.shape[1]), xty) for lam in PENALTIES]
        out[f"{h}d"] = max(mean_rank_ic(select, j, beta) for beta in fits)
    return out


def main() -> None:
    ap = tuning_market_args()
    ap.add_argument("--variants", nargs="*", help="Names of VARIANTS to run (default: all).")
    args = ap.parse_args()
    cfg = TrainingConfig()
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in args.market_seeds:
        src, panel, topix, reg, feats = market_tables(
            market_preset(args.preset, seed=seed, n_stocks=args.n_stocks)
        )
        for name, over in [*VARIANTS.items(), (HIDDEN, {})]:
            if args.variants and name not in args.variants:
                continue
            t0 = time.perf_counter()
            graph = build_stock_graph(panel, topix, GraphConfig(**over))
            if name == HIDDEN:
                graph = hidden_graph(src, graph)
            data = PanelTensors.for_model(feats, reg, graph, cfg)
            r = probe(data, cfg)
            rows.setdefault(name, []).append(r)
            print(
                json.dumps(
                    {
                        "preset": args.preset,
                        "market_seed": seed,
                        "variant": name,
                        **r,
                        "edges_per_stock": round(
                            graph.height / max(graph["date"].n_unique(), 1) * 2 / args.n_stocks, 1
                        ),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                ),
                flush=True,
            )
    hs = [f"{h}d" for h in cfg.horizons]
    print(
        f"\n| graph variant ({args.preset}, seeds {args.market_seeds}) | " + " | ".join(hs) + " | **mean** |"
    )
    print("|---|" + "---|" * (len(hs) + 1))
    for name, rs in rows.items():
        means = [float(np.mean([r[h] for r in rs])) for h in hs]
        print(f"| {name} | " + " | ".join(f"{m:.4f}" for m in means) + f" | **{np.mean(means):.4f}** |")


if __name__ == "__main__":
    main()
