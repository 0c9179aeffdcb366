"""Benchmark: the ridge start fitted with recent dates weighted more (nineteenth sweep). A date's rows get
weight 0.5^(age / half_life), age in trading days before the fit's last date, both in the fit on train whose
penalties validation chooses and in the refit through validation. Linear mode, as bench_ridge_cv.py: the
model's ridge start without the deep path. Scores: mean daily RankIC per horizon on the selection window of
the tuning markets (their test windows are never read). Half-life ``inf`` is today's default.

Run: ./run shell, then python bench/bench_recency.py --preset realistic --n-stocks 1000
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import torch
from bench_linear_probe import tuning_market_args
from bench_ridge_cv import (
    date_batches,
    linear_mode,
    print_header,
    selection_scores,
    selection_table,
)
from bench_throughput import market_tables

from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.training import skip_init


@torch.no_grad()
def weighted_normal_equations(model, data, dates: list[int], half_lives: list[float], batch_dates: int):
    """Per half-life, per horizon: sum_t w_t U_t'U_t, sum_t w_t U_t'z_t and sum_t w_t n_t, with
    w_t = 0.5^(age_t / half_life) and age_t the trading days from t to the last of ``dates`` (z: labels
    z-scored per date). One pass over the dates for every half-life."""
    cfg = model.cfg
    last = max(dates)
    n_h = len(cfg.horizons)
    sums = None
    for ds, u, y, counts in date_batches(model, data, dates, batch_dates):
        yz = skip_init.zscore_by_date(y, counts, cfg.label_clip)
        if sums is None:
            d = u.shape[1]
            sums = {hl: (u.new_zeros(n_h, d, d), u.new_zeros(n_h, d), np.zeros(n_h)) for hl in half_lives}
        age = torch.cat(
            [torch.full((n,), float(last - t), dtype=u.dtype) for t, n in zip(ds, counts, strict=True)]
        )
        for hl, (gram, cross, rows) in sums.items():
            w = 0.5 ** (age / hl)
            for j in range(n_h):
                ok = torch.isfinite(yz[:, j])
                uw = u[ok] * w[ok, None]
                gram[j] += uw.T @ u[ok]
                cross[j] += uw.T @ yz[ok, j]
                rows[j] += float(w[ok].sum())
    return sums


def solve(gram, cross, rows, penalty: dict[int, float] | float) -> torch.Tensor:
    """(H, d) weights; ``penalty`` per horizon index or one for all, scaled by the weighted rows."""
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    out = []
    for j in range(gram.shape[0]):
        p = penalty[j] if isinstance(penalty, dict) else penalty
        out.append(torch.linalg.solve(gram[j] + max(rows[j], 1.0) * p * eye, cross[j]))
    return torch.stack(out)


def run_market(args, seed: int) -> list[dict]:
    src, panel, topix, reg, feats = market_tables(
        market_preset(args.preset, seed=seed, n_stocks=args.n_stocks)
    )
    cfg = TrainingConfig()
    data, split, model, refit = linear_mode(feats, reg, build_stock_graph(panel, topix, GraphConfig()), cfg)
    grid = cfg.skip_ridge_penalties
    rows = []
    fits = weighted_normal_equations(model, data, split.train, args.half_lives, cfg.batch_dates)
    refits = weighted_normal_equations(model, data, refit, args.half_lives, cfg.batch_dates)
    for half_life in args.half_lives:
        t0 = time.perf_counter()
        weights = {p: solve(*fits[half_life], p) for p in grid}
        _, chosen, _ = skip_init.choose_per_horizon(model, weights, data, split.val, cfg.batch_dates)
        per_h = {j: chosen[f"{h}d"] for j, h in enumerate(cfg.horizons)}
        skip_init.set_skip(model, solve(*refits[half_life], per_h))
        row = {
            "preset": args.preset,
            "market_seed": seed,
            "n_stocks": args.n_stocks,
            "half_life": half_life,
            "choice": chosen,
            "fit_s": round(time.perf_counter() - t0, 1),
        }
        row |= {k: round(v, 4) for k, v in selection_scores(model, data, cfg, split, src).items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.val_hl:
        # per horizon, (half-life, penalty) chosen together on validation
        t0 = time.perf_counter()
        weights = {(hl, p): solve(*fits[hl], p) for hl in args.half_lives for p in grid}
        _, chosen, _ = skip_init.choose_per_horizon(model, weights, data, split.val, cfg.batch_dates)
        final = []
        for j, h in enumerate(cfg.horizons):
            hl, p = chosen[f"{h}d"]
            final.append(solve(*refits[hl], p)[j])
        skip_init.set_skip(model, torch.stack(final))
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "half_life": "val"}
        row |= {
            "choice": {k: list(v) for k, v in chosen.items()},
            "fit_s": round(time.perf_counter() - t0, 1),
        }
        row |= {k: round(v, 4) for k, v in selection_scores(model, data, cfg, split, src).items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = tuning_market_args()
    ap.add_argument("--half-lives", nargs="+", type=float, default=[math.inf, 500, 250, 125, 60])
    ap.add_argument(
        "--val-hl", action="store_true", help="also the half-life chosen per horizon on validation"
    )
    args = ap.parse_args()
    print_header()
    rows = [r for seed in args.market_seeds for r in run_market(args, seed)]
    names = [*args.half_lives, *(["val"] if args.val_hl else [])]
    selection_table(args, rows, "half-life", "half_life", names)


if __name__ == "__main__":
    main()
