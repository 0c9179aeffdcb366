"""Benchmark: factor timing of the input skip (``skip_timing_half_life``, ``skip_timing_shrink``), chosen on
the tuning markets' selection windows only (their test windows are never read; ``--window test`` reports a
choice once, on held-out markets).

Timing acts at prediction time, so each market's model is fitted once and scored with every timing variant:
- ``--mode model``: the default ATFT-GAT-FAN (one training seed, ``--epochs``/``--patience``);
- ``--mode linear``: the model's own ridge start without the deep path (penalty per horizon chosen on
  validation, refitted through validation, as the defaults do): what 1000-stock realistic markets allow on
  two cores.
Rows: mean daily RankIC per horizon on the selection window, the 1-day oracle on the same rows, and each
variant's selection mean. JSON lines on stdout, then a markdown table.

Run: ./run shell, then python bench/bench_skip_timing.py --preset realistic --n-stocks 1000 --mode linear
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
import torch
from bench_linear_probe import tuning_market_args
from bench_throughput import market_tables

from atft_dagster.evaluation.baselines import DailyRankIC
from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training import skip_init
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.linear_graph import NO_DEEP_PATH
from atft_dagster.training.skip_timing import timing_key, timing_statistics
from atft_dagster.training.train import config_folds, load_model, predict, refit_dates, train

OFF = {"skip_timing_half_life": 0.0}
# timed at every horizon, each weight apart (the first basis measured); a column is that horizon's figure
EVERY = {"skip_timing_horizons": [1, 5, 10, 20], "skip_timing_basis": "inputs", "skip_timing_gate": False}
ONE_DAY_GROUPS = {"skip_timing_horizons": [1], "skip_timing_basis": "groups", "skip_timing_gate": False}
VARIANTS: dict[str, dict] = {
    "off": OFF,
    "own": {},  # the trained model's own timing config
    "hl10_k1": {**EVERY, "skip_timing_half_life": 10.0, "skip_timing_shrink": 1.0},
    "hl10_k3": {**EVERY, "skip_timing_half_life": 10.0, "skip_timing_shrink": 3.0},
    "hl20_k1": {**EVERY, "skip_timing_half_life": 20.0, "skip_timing_shrink": 1.0},
    "hl20_k3": {**EVERY, "skip_timing_half_life": 20.0, "skip_timing_shrink": 3.0},
    "hl20_k10": {**EVERY, "skip_timing_half_life": 20.0, "skip_timing_shrink": 10.0},
    "hl60_k3": {**EVERY, "skip_timing_half_life": 60.0, "skip_timing_shrink": 3.0},
    "hl60_k10": {**EVERY, "skip_timing_half_life": 60.0, "skip_timing_shrink": 10.0},
    # the choice for drifting markets (twelfth sweep): half-life 20, shrink 1, the 1-day horizon only
    "hl20_k1_1d": {
        "skip_timing_half_life": 20.0,
        "skip_timing_shrink": 1.0,
        "skip_timing_horizons": [1],
        "skip_timing_basis": "inputs",
        "skip_timing_gate": False,
    },
    # one multiplier per feature group (2026-11-29, after a /tmp probe of the same idea)
    "groups_hl20_k0.1": {**ONE_DAY_GROUPS, "skip_timing_half_life": 20.0, "skip_timing_shrink": 0.1},
    "groups_hl20_k0.3": {**ONE_DAY_GROUPS, "skip_timing_half_life": 20.0, "skip_timing_shrink": 0.3},
    "groups_hl20_k1": {**ONE_DAY_GROUPS, "skip_timing_half_life": 20.0, "skip_timing_shrink": 1.0},
    "groups_hl60_k0.3": {**ONE_DAY_GROUPS, "skip_timing_half_life": 60.0, "skip_timing_shrink": 0.3},
    # the option's defaults behind the point-in-time gate (seventeenth sweep)
    "groups_hl20_k1_gate": {
        **ONE_DAY_GROUPS,
        "skip_timing_half_life": 20.0,
        "skip_timing_shrink": 1.0,
        "skip_timing_gate": True,
        "skip_timing_gate_min_t": 2.0,
    },
}
# the gate's knobs one at a time around the defaults (eighteenth sweep: min_t 2, burn-in 60, penalty 0.3)
GATED = VARIANTS["groups_hl20_k1_gate"]
VARIANTS |= {
    "gate_t1": {**GATED, "skip_timing_gate_min_t": 1.0},
    "gate_t3": {**GATED, "skip_timing_gate_min_t": 3.0},
    "gate_burn30": {**GATED, "skip_timing_gate_burn_in": 30},
    "gate_burn120": {**GATED, "skip_timing_gate_burn_in": 120},
    "gate_pen0.1": {**GATED, "skip_timing_gate_penalty": 0.1},
    "gate_pen1": {**GATED, "skip_timing_gate_penalty": 1.0},
    # the gate per horizon: timing the longer horizons too, each behind its own backtest
    "gate_1d5d": {**GATED, "skip_timing_horizons": [1, 5]},
    "gate_all": {**GATED, "skip_timing_horizons": [1, 5, 10, 20]},
    # thirty-second sweep: every horizon timed by feature group without the gate, judged by agreement
    "groups_all_ungated": {**GATED, "skip_timing_horizons": [1, 5, 10, 20], "skip_timing_gate": False},
}


def linear_model(data: PanelTensors, cfg: TrainingConfig, split, refit: bool = True) -> ATFTGATFAN:
    """The ridge start as the defaults fit it: penalty per horizon on validation, refit through validation
    (``refit`` False: the train-window fit that training starts from)."""
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update=NO_DEEP_PATH))
    skip_init.zero_deep_head(model)
    grid = cfg.skip_ridge_penalties
    weights, _ = skip_init.ridge_solutions(model, data, split.train, grid, cfg.batch_dates)
    weight, chosen, _ = skip_init.choose_per_horizon(model, weights, data, split.val, cfg.batch_dates)
    if refit:
        again, _ = skip_init.ridge_solutions(
            model, data, refit_dates(data, cfg, split), grid, cfg.batch_dates
        )
        weight = torch.stack([again[chosen[f"{h}d"]][j] for j, h in enumerate(cfg.horizons)])
    skip_init.set_skip(model, weight)
    print(json.dumps({"chosen": chosen}), flush=True)
    return model


def run_market(args, seed: int) -> list[dict]:
    src, panel, topix, reg, feats = market_tables(
        market_preset(args.preset, seed=seed, n_stocks=args.n_stocks)
    )
    cfg = TrainingConfig(
        **{
            "epochs": args.epochs,
            "patience": args.patience,
            "ensemble_seeds": 1,
            **json.loads(args.overrides),
        }
    )
    data = PanelTensors.for_model(feats, reg, build_stock_graph(panel, topix, GraphConfig()), cfg)
    split = config_folds(data, cfg)[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.mode == "model":
            res = train(data, cfg, split, Path(tmp), {})
            start = res.start_validation or {}
            model = load_model(res.best_checkpoint)[0]
            graph = model.graph  # the first member's gate
            gate = None if graph is None else float(graph.gate().detach().mean())
            print(json.dumps({"penalty": start.get("penalty"), "epochs": res.horizon_epochs, "gate": gate}))
        else:
            model = linear_model(data, cfg, split)
    fit_s = time.perf_counter() - t0
    rows, own, passes = [], model.cfg, {}
    for name in args.variants:
        timing = VARIANTS[name]
        model.cfg = own.model_copy(update=timing)  # timing acts at prediction time only
        t1 = time.perf_counter()
        dates = getattr(split, args.window)
        stats = None
        if model.cfg.skip_timing_half_life > 0:  # variants of one timing config share its pass
            key = timing_key(model.cfg)
            stats = passes[key] = passes.get(key) or timing_statistics(model, data, dates)
        frame = predict(model, data, dates, cfg.batch_dates, timing=stats)
        frame = frame.join(
            src.oracle(frame["date"].min(), frame["date"].max()), on=["date", "code"], how="left"
        )
        dates = frame["date"].to_numpy()
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "mode": args.mode}
        row |= {"overrides": args.overrides}
        row |= {"variant": name, "fit_s": round(fit_s, 1), "predict_s": round(time.perf_counter() - t1, 1)}
        if stats is not None and stats.gate is not None:  # share of the window's dates the gate timed
            window = getattr(split, args.window)
            min_t = model.cfg.skip_timing_gate_min_t
            row["gate_on"] = float(np.mean([stats.gate[t][0][1] > min_t for t in window]))
            row["gate_t_first"] = stats.gate[window[0]][0][1]  # the backtest's t as the window opens
            for k, j in enumerate(stats.horizon_index[1:], start=1):  # longer timed horizons, each its own
                h = cfg.horizons[j]
                row[f"gate_on_{h}d"] = float(np.mean([stats.gate[t][k][1] > min_t for t in window]))
                row[f"gate_t_last_{h}d"] = stats.gate[window[-1]][k][1]
        for h in cfg.horizons:  # how closely the variant ranks like the truth (no returns' noise)
            row[f"agree_{h}d"] = oracle_agreement(
                frame, {"pred": f"pred_{h}d"}, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
            )["pred"]
        rows.append(add_scores(row, frame, dates, args.window, cfg))
    return rows


def add_scores(row: dict, frame, dates, window: str, cfg: TrainingConfig, prefix: str = "pred") -> dict:
    """``row`` with the mean daily RankIC of ``{prefix}_{h}d`` and of the oracle per horizon on ``frame``
    (and their mean over horizons), printed as one JSON line."""
    for h in cfg.horizons:
        score = DailyRankIC(dates, frame[f"label_{h}d"].to_numpy(), cfg.min_stocks_per_date)
        row[f"{window}_{h}d"] = score(frame[f"{prefix}_{h}d"].to_numpy())
        row[f"oracle_{h}d"] = score(frame[f"oracle_{h}d"].to_numpy())
    row[f"{window}_mean"] = float(np.mean([row[f"{window}_{h}d"] for h in cfg.horizons]))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return row


def trained_default(args, seed: int):
    """(market source, tensors, config, fold 0, the default model trained with one seed, start time)."""
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
    return src, data, cfg, split, model, t0


def sweep_arguments() -> argparse.Namespace:
    """The arguments of a sweep over the tuning markets (held-out markets refused)."""
    ap = tuning_market_args("realistic", (11, 12, 13, 14), 1000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=2)
    return ap.parse_args()


def run_sweep(run_market, names: tuple[str, ...]) -> tuple[list[dict], list[int]]:
    """A sweep script's main: ``run_market(args, seed)`` on every tuning market, then the table of ``names``;
    returns (the rows, the markets)."""
    args = sweep_arguments()
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows = [r for seed in args.market_seeds for r in run_market(args, seed)]
    seeds = args.market_seeds
    print(f"\n{args.preset}, {args.n_stocks} stocks: selection window, market " + " / ".join(map(str, seeds)))
    selection_table(rows, seeds, names)
    return rows, seeds


def selection_table(rows: list[dict], seeds: list[int], names: list[str] | tuple[str, ...]) -> None:
    """Print one markdown row per variant: per horizon and for the mean, the selection figures of ``seeds``."""
    print("\n| variant | 1d | 5d | 10d | 20d | **mean** |")
    print("|---|---|---|---|---|---|")
    for name in names:
        rs = {r["market_seed"]: r for r in rows if r["variant"] == name}
        cells = [" / ".join(f"{rs[s][f'selection_{h}d']:.4f}" for s in seeds) for h in (1, 5, 10, 20)]
        mean = " / ".join(f"{rs[s]['selection_mean']:.4f}" for s in seeds)
        print(f"| {name} | " + " | ".join(cells) + f" | **{mean}** |")


def agreement_table(rows: list[dict], seeds: list[int], names: list[str] | tuple[str, ...]) -> None:
    """One markdown row per variant: its agreement with the oracle (``agree_{h}d``) per horizon and the mean
    over 5-20 days, per market."""
    print("\nAgreement with the oracle, market " + " / ".join(map(str, seeds)))
    print("\n| variant | 1d | 5d | 10d | 20d | **5-20d mean** |")
    print("|---|---|---|---|---|---|")
    for name in names:
        rs = {r["market_seed"]: r for r in rows if r["variant"] == name}
        cells = [" / ".join(f"{rs[s][f'agree_{h}d']:.3f}" for s in seeds) for h in (1, 5, 10, 20)]
        long = [np.mean([rs[s][f"agree_{h}d"] for h in (5, 10, 20)]) for s in seeds]
        print(f"| {name} | " + " | ".join(cells) + " | **" + " / ".join(f"{x:.3f}" for x in long) + "** |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12])
    ap.add_argument("--n-stocks", type=int, default=1000)
    ap.add_argument("--mode", choices=("model", "linear"), default="linear")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--overrides", default="{}", help="JSON of TrainingConfig fields every fit uses")
    ap.add_argument(
        "--window",
        choices=("val", "selection", "test"),
        default="selection",
        help="test: the held-out report of a choice already made (never on the tuning markets 11, 12)",
    )
    args = ap.parse_args()
    if args.window == "test" and {11, 12} & set(args.market_seeds):
        ap.error("the tuning markets' test windows are not read")
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows = [r for seed in args.market_seeds for r in run_market(args, seed)]
    seeds, w = args.market_seeds, args.window
    print(
        f"\n{args.preset}, {args.n_stocks} stocks, {args.mode}: {w} window, market "
        + " / ".join(map(str, seeds))
    )
    print("\n| variant | 1d | 5d | 10d | 20d | **mean** | 1d share of the oracle |")
    print("|---|---|---|---|---|---|---|")
    for name in args.variants:
        rs = {r["market_seed"]: r for r in rows if r["variant"] == name}
        cells = [" / ".join(f"{rs[s][f'{w}_{h}d']:.4f}" for s in seeds) for h in (1, 5, 10, 20)]
        mean = " / ".join(f"{rs[s][f'{w}_mean']:.4f}" for s in seeds)
        share = " / ".join(f"{rs[s][f'{w}_1d'] / rs[s]['oracle_1d']:.2f}" for s in seeds)
        print(f"| {name} | " + " | ".join(cells) + f" | **{mean}** | {share} |")
    agreement_table(rows, seeds, args.variants)


if __name__ == "__main__":
    main()
