"""Benchmark: model variants compared the honest way, on tuning markets only.

Each variant is a set of TrainingConfig overrides. On every tuning market (walk-forward fold 0) each variant
is trained with the same training seeds; the table gives, per horizon, the selection-window mean daily RankIC
(what a choice reads) and the test-window figure of the same runs (shown, never chosen on). The tuning market
seeds are disjoint from the held-out seeds of bench_model.py, where the chosen config is reported.
Results are appended as JSON lines to --out, so a long sweep can be split over several invocations.

Run: ./run shell, then python bench/bench_variants.py --variants base raw raw_es ... [--n-stocks 200]
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
import torch
from bench_throughput import market_tables

from atft_dagster.evaluation.report import score_models
from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict, member_seeds
from atft_dagster.training.train import config_folds, train

EQUAL4 = [1.0, 1.0, 1.0, 1.0]
# Overrides are explicit (not relative to today's defaults), so a row means the same after defaults change.
BEFORE = {"graph_raw_inputs": False, "early_stopping_weights": [1.0, 0, 0, 0], "lr": 1e-3}
NOW = {
    "graph_raw_inputs": True,
    "early_stopping_weights": EQUAL4,
    "lr": 3e-4,
    "input_skip": False,
    "skip_timing_half_life": 0.0,
    "select_per_horizon": False,
    "keep_start_from": None,
}
SKIP_PH = {
    **NOW,
    "input_skip": True,
    "skip_neighbour_mean": True,
    "neighbour_weight_power": 2.0,
    "select_per_horizon": True,
    "skip_ridge_penalty": None,
    "skip_lr_scale": 1.0,
}
# Today's defaults, as the sweeps run them (the ridge-started, frozen input skip: "ridge_3_frozen").
DEFAULTS = {**SKIP_PH, "skip_ridge_penalty": 3.0, "skip_lr_scale": 0.0}
# A variant may set "graph": GraphConfig overrides on top of GRAPH_BEFORE, the stock graph every sweep up
# to the ninth ran on (explicit, so those rows keep their meaning after GraphConfig's defaults change).
GRAPH_BEFORE = {"top_k": 10, "lookback": 250, "half_life": 125.0}
GRAPH_K7_LB500 = {"top_k": 7, "lookback": 500, "half_life": 250.0}
# Every sweep up to the tenth fitted the ridge start on the train window only; a variant sets the field to
# refit it through validation (the eleventh sweep).
FIT_BEFORE = {"skip_refit_through_validation": False}
VARIANTS: dict[str, dict] = {
    "base": BEFORE,
    "raw": {**BEFORE, "graph_raw_inputs": True},
    "es_multi": {**BEFORE, "early_stopping_weights": EQUAL4},
    "raw_es": {**BEFORE, "graph_raw_inputs": True, "early_stopping_weights": EQUAL4},
    "raw_es_seq40": {**BEFORE, "graph_raw_inputs": True, "early_stopping_weights": EQUAL4, "seq_len": 40},
    "raw_es_hw_equal": {
        **BEFORE,
        "graph_raw_inputs": True,
        "early_stopping_weights": EQUAL4,
        "horizon_weights": EQUAL4,
    },
    "raw_es_h128": {**BEFORE, "graph_raw_inputs": True, "early_stopping_weights": EQUAL4, "hidden": 128},
    "raw_es_lr3e-4": {**BEFORE, "graph_raw_inputs": True, "early_stopping_weights": EQUAL4, "lr": 3e-4},
    "raw_es_drop03": {**BEFORE, "graph_raw_inputs": True, "early_stopping_weights": EQUAL4, "dropout": 0.3},
    # 2026-11-27 (second sweep): today's defaults, then the linear input skip (issue "model quality")
    "now": {**NOW},
    "skip": {**NOW, "input_skip": True, "skip_neighbour_mean": False},
    "skip_nm": {**NOW, "input_skip": True, "skip_neighbour_mean": True, "neighbour_weight_power": 2.0},
    "skip_nm_lr1e-3": {**NOW, "input_skip": True, "skip_neighbour_mean": True, "lr": 1e-3},
    "skip_nm_p1": {**NOW, "input_skip": True, "skip_neighbour_mean": True, "neighbour_weight_power": 1.0},
    "now_ph": {**NOW, "select_per_horizon": True},
    "skip_nm_ph": {**NOW, "input_skip": True, "skip_neighbour_mean": True, "select_per_horizon": True},
    # 2026-11-27 (third sweep): the skip starts at the ridge solution on the train window
    "ridge_0.1": {**SKIP_PH, "skip_ridge_penalty": 0.1},
    "ridge_1": {**SKIP_PH, "skip_ridge_penalty": 1.0},
    "ridge_10": {**SKIP_PH, "skip_ridge_penalty": 10.0},
    "ridge_1_frozen": {**SKIP_PH, "skip_ridge_penalty": 1.0, "skip_lr_scale": 0.0},
    "ridge_10_frozen": {**SKIP_PH, "skip_ridge_penalty": 10.0, "skip_lr_scale": 0.0},
    "ridge_1_slow": {**SKIP_PH, "skip_ridge_penalty": 1.0, "skip_lr_scale": 0.1},
    "ridge_3": {**SKIP_PH, "skip_ridge_penalty": 3.0},
    "ridge_3_frozen": {**SKIP_PH, "skip_ridge_penalty": 3.0, "skip_lr_scale": 0.0},
    # 2026-11-28 (fifth sweep): can the deep path add to the frozen ridge start (today's defaults)?
    "deep_lr1e-3": {**SKIP_PH, "skip_ridge_penalty": 3.0, "skip_lr_scale": 0.0, "lr": 1e-3},
    "deep_h32": {**SKIP_PH, "skip_ridge_penalty": 3.0, "skip_lr_scale": 0.0, "hidden": 32},
    # 2026-11-28 (seventh sweep): a 40-day window; the defaults' own epochs and patience
    "deep_seq40": {**SKIP_PH, "skip_ridge_penalty": 3.0, "skip_lr_scale": 0.0, "seq_len": 40},
    "epochs12_p6": {**SKIP_PH, "skip_ridge_penalty": 3.0, "skip_lr_scale": 0.0, "epochs": 12, "patience": 6},
    # 2026-11-28 (eighth sweep): one row for each default that had none, each against DEFAULTS
    "warmup_0": {**DEFAULTS, "warmup_epochs": 0},
    "wd_1e-3": {**DEFAULTS, "weight_decay": 1e-3},
    "input_clip_3": {**DEFAULTS, "input_clip": 3.0},
    "loss_regression_only": {**DEFAULTS, "w_rank_ic": 0.0, "w_ic": 0.0, "w_sharpe": 0.0},
    "loss_rank_only": {**DEFAULTS, "w_huber": 0.0, "w_pinball": 0.0},
    "fan_off": {**DEFAULTS, "use_fan": False},
    "fan_k4": {**DEFAULTS, "fan_top_k": 4},
    "dropout_0": {**DEFAULTS, "dropout": 0.0},
    "lstm_2": {**DEFAULTS, "lstm_layers": 2},
    "heads_halved": {**DEFAULTS, "attn_heads": 2, "gat_heads": [2, 1]},
    # 2026-11-28 (ninth sweep): the GAT's heads alone, the largest per-edge cost of a CPU step
    "gat_heads_halved": {**DEFAULTS, "gat_heads": [2, 1]},
    "label_clip_5": {**DEFAULTS, "label_clip": 5.0},
    "grad_clip_5": {**DEFAULTS, "grad_clip": 5.0},
    "quantile_median": {**DEFAULTS, "quantiles": [0.5]},
    "ensemble_3": {**DEFAULTS, "ensemble_seeds": 3},
    "gate_0.2": {**DEFAULTS, "gate_init": 0.2},
    "san_on": {**DEFAULTS, "use_san": True},
    "huber_delta_0.5": {**DEFAULTS, "huber_delta": 0.5},
    "soft_rank_t_0.3": {**DEFAULTS, "soft_rank_temperature": 0.3},
    "batch_dates_8": {**DEFAULTS, "batch_dates": 8},
    # 2026-11-28 (tenth sweep): the stock graph's neighbours and window, after bench_learning_curve.py
    "graph_k7_lb500": {**DEFAULTS, "graph": GRAPH_K7_LB500},
    "graph_k7_lb500_ridge_grid": {
        **{k: v for k, v in DEFAULTS.items() if k != "skip_ridge_penalty"},
        "skip_ridge_penalties": [0.1, 0.3, 1.0, 3.0, 10.0],
        "graph": GRAPH_K7_LB500,
    },
    # 2026-11-29 (eleventh sweep): the ridge start refitted on train through validation after training
    "graph_k7_lb500_ridge_grid_refit": {
        **{k: v for k, v in DEFAULTS.items() if k != "skip_ridge_penalty"},
        "skip_ridge_penalties": [0.1, 0.3, 1.0, 3.0, 10.0],
        "graph": GRAPH_K7_LB500,
        "skip_refit_through_validation": True,
    },
}


def run_market(preset: str, seed: int, n_stocks: int, variants: list[str], base: dict) -> list[dict]:
    src, panel, topix, reg, feats = market_tables(market_preset(preset, seed=seed, n_stocks=n_stocks))
    graphs: dict[str, pl.DataFrame] = {}
    out = []
    for name in variants:
        over = dict(VARIANTS[name])
        graph_over = {**GRAPH_BEFORE, **over.pop("graph", {})}
        key = json.dumps(graph_over, sort_keys=True)
        if key not in graphs:
            graphs[key] = build_stock_graph(panel, topix, GraphConfig(**graph_over))
        cfg = TrainingConfig(**{**FIT_BEFORE, **base, **over})
        data = PanelTensors.for_model(feats, reg, graphs[key], cfg)
        split = config_folds(data, cfg)[0]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            results = [
                train(data, cfg.model_copy(update={"seed": s}), split, Path(tmp) / str(s), {})
                for s in member_seeds(cfg.seed, cfg.ensemble_seeds)
            ]
            paths = [r.best_checkpoint for r in results]
            frames = {w: ensemble_predict(paths, data, getattr(split, w))[0] for w in ("selection", "test")}
        row = {
            "preset": preset,
            "market_seed": seed,
            "n_stocks": n_stocks,
            "variant": name,
            "overrides": VARIANTS[name],
            "best_epochs": [r.best_epoch for r in results],
            "horizon_epochs": [r.horizon_epochs for r in results],
            "ridge_penalties": [(r.start_validation or {}).get("penalty") for r in results],
            "skip_refit": [r.skip_refit for r in results],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        for w, frame in frames.items():
            for h in cfg.horizons:
                rep, _ = score_models(
                    frame, {"m": f"pred_{h}d"}, f"label_{h}d", cfg.min_stocks_per_date, h - 1
                )
                row[f"{w}_{h}d"] = rep["m"].rank_ic
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def summarise(rows: list[dict], horizons=(1, 5, 10, 20)) -> str:
    lines = [
        "| variant | markets | "
        + " | ".join(f"selection {h}d" for h in horizons)
        + " | selection mean | "
        + " | ".join(f"test {h}d" for h in horizons)
        + " |",
        "|---|---|" + "---|" * (2 * len(horizons) + 1),
    ]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for name in names:
        rs = [r for r in rows if r["variant"] == name]
        sel = [np.mean([r[f"selection_{h}d"] for r in rs]) for h in horizons]
        test = [np.mean([r[f"test_{h}d"] for r in rs]) for h in horizons]
        lines.append(
            f"| {name} | {len(rs)} | "
            + " | ".join(f"{v:.4f}" for v in sel)
            + f" | **{np.mean(sel):.4f}** | "
            + " | ".join(f"{v:.4f}" for v in test)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12])
    ap.add_argument("--n-stocks", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--ensemble-seeds", type=int, default=1)
    ap.add_argument("--out", default="bench/variants.jsonl")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.summary_only:
        print(
            f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {torch.get_num_threads()} threads",
            flush=True,
        )
        base = {"epochs": args.epochs, "patience": args.patience, "ensemble_seeds": args.ensemble_seeds}
        for seed in args.market_seeds:
            for row in run_market(args.preset, seed, args.n_stocks, args.variants, base):
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    print(summarise([r for r in rows if r["preset"] == args.preset]))


if __name__ == "__main__":
    main()
