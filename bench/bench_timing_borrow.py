"""Benchmark: the longer horizons borrow the 1-day timing multipliers (30th sweep, a linear probe).

Skip timing re-weights the 1-day skip's feature-group sub-scores by their recent payoff (one multiplier per
group, ``training/skip_timing.py``); the 5-20-day horizons keep their trained skip, since their own labels
end days late and overlap (their gate never passes on the realistic tuning markets, eighteenth sweep).
Candidate: an effect's current strength relative to its average does not depend on the horizon, so each
longer horizon's group sub-scores take the 1-day multipliers, behind the 1-day gate. Prototype here only
(no config field): :func:`borrowed_deltas` replaces the prediction's timing deltas.

Per market: the model's ridge start without the deep path, as the defaults fit it (``bench_skip_timing``'s
linear mode), the default gated 1-day timing pass, then predictions on the selection window with the
default deltas and with the borrowed ones.
Run: ./run shell, then python bench/bench_timing_borrow.py --preset realistic --n-stocks 1000
"""

from __future__ import annotations

import json

import torch
from bench_linear_probe import tuning_market_args
from bench_skip_timing import add_scores, linear_model, selection_table
from bench_throughput import market_tables

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.training import skip_timing, train
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds, predict

LONGER = (5, 10, 20)
DEFAULT_DELTAS = skip_timing.timed_skip_deltas


def borrowed_deltas(model, data, date_indices, stats=None) -> dict[int, torch.Tensor]:
    """The default timing deltas, with every horizon of ``LONGER`` re-weighted by the 1-day multipliers
    wherever the 1-day horizon is timed (its gate passed and it has ended labels)."""
    cfg = model.cfg
    out = DEFAULT_DELTAS(model, data, date_indices, stats)
    beta = skip_timing.trained_skip_weights(model).detach().double()
    basis = skip_timing.group_basis(beta, data.groups, model.with_neighbour_mean)
    one = cfg.horizons.index(1)
    for t in date_indices:
        gram, cross, rows = (s[0] for s in stats.per_date[t])
        gated_off = stats.gate is not None and not stats.gate[t][0][1] > cfg.skip_timing_gate_min_t
        if gated_off or rows <= 0:
            continue
        m = skip_timing._group_multipliers(gram / rows, cross / rows, basis[one], cfg.skip_timing_shrink)
        for h in LONGER:
            out[t][cfg.horizons.index(h)] = basis[cfg.horizons.index(h)] @ (m - 1)
    return out


def run_market(args, seed: int) -> list[dict]:
    src, panel, topix, reg, feats = market_tables(
        market_preset(args.preset, seed=seed, n_stocks=args.n_stocks)
    )
    cfg = TrainingConfig()
    data = PanelTensors.for_model(feats, reg, build_stock_graph(panel, topix, GraphConfig()), cfg)
    split = config_folds(data, cfg)[0]
    model = linear_model(data, cfg, split)
    dates = split.selection
    stats = skip_timing.timing_statistics(model, data, dates)
    rows = []
    for name, deltas in (("default", DEFAULT_DELTAS), ("borrow", borrowed_deltas)):
        train.timed_skip_deltas = deltas  # what predict() calls
        try:
            frame = predict(model, data, dates, cfg.batch_dates, timing=stats)
        finally:
            train.timed_skip_deltas = DEFAULT_DELTAS
        frame = frame.join(
            src.oracle(frame["date"].min(), frame["date"].max()), on=["date", "code"], how="left"
        )
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "variant": name}
        row["gate_on"] = sum(stats.gate[t][0][1] > cfg.skip_timing_gate_min_t for t in dates) / len(dates)
        for h in cfg.horizons:  # diagnostic: agreement with the expected returns, free of realised noise
            pred = {"pred": f"pred_{h}d"}
            row[f"vs_oracle_{h}d"] = oracle_agreement(
                frame, pred, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
            )["pred"]
        rows.append(add_scores(row, frame, frame["date"].to_numpy(), "selection", cfg))
    return rows


def main() -> None:
    args = tuning_market_args("realistic", (11, 12, 13, 14), 1000).parse_args()
    rows = [r for seed in args.market_seeds for r in run_market(args, seed)]
    print(json.dumps({"preset": args.preset, "markets": args.market_seeds}))
    selection_table(rows, args.market_seeds, ("default", "borrow"))
    print("\nDiagnostic, not the rule's: mean daily RankIC of the prediction against the h-day oracle")
    print("\n| variant | 1d | 5d | 10d | 20d |")
    print("|---|---|---|---|---|")
    for name in ("default", "borrow"):
        rs = {r["market_seed"]: r for r in rows if r["variant"] == name}
        cells = [
            " / ".join(f"{rs[s][f'vs_oracle_{h}d']:.4f}" for s in args.market_seeds) for h in (1, 5, 10, 20)
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
