"""Benchmark: the ridge start refitted while it predicts (fifteenth sweep). Every ``k`` trading days of the
scored window the skip of each horizon is re-solved, at the penalty that horizon chose on validation, on
every label that has ended by that day (date u enters horizon h's fit once u + h <= the refit day): the
refit through validation plus everything learned since. Against the static refit through validation (the
default, ``every`` null). Linear mode; selection window of the tuning markets (test windows never read).

Run: ./run shell, then python bench/bench_rolling_refit.py --preset realistic --n-stocks 1000
"""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime

import numpy as np
import torch
from bench_linear_probe import linear_start, tuning_market_args
from bench_ridge_cv import date_batches

from atft_dagster.training import skip_init
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.train import refit_dates


def per_date(model, data, dates, cfg) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Date -> (skip inputs u, raw labels y)."""
    out = {}
    for ds, u, y, counts in date_batches(model, data, dates, cfg.batch_dates):
        out |= dict(zip(ds, zip(torch.split(u, counts), torch.split(y, counts), strict=True), strict=True))
    return out


class NormalEquations:
    """Horizon column j's Gram matrix, cross products and rows over the dates added so far."""

    def __init__(self, d: int, j: int, clip: float) -> None:
        self.gram = torch.zeros(d, d, dtype=torch.float64)
        self.cross = torch.zeros(d, dtype=torch.float64)
        self.rows, self.j, self.clip, self.dates = 0, j, clip, set()

    def add(self, rows: dict[int, tuple[torch.Tensor, torch.Tensor]], dates) -> None:
        for t in dates:
            if t in self.dates:
                continue
            u, y = rows[t]
            yz = skip_init.zscore_by_date(y, [len(y)], self.clip)[:, self.j]
            ok = torch.isfinite(yz)
            self.gram += u[ok].T @ u[ok]
            self.cross += u[ok].T @ yz[ok]
            self.rows += int(ok.sum())
            self.dates.add(t)

    def solve(self, penalty: float) -> torch.Tensor:
        eye = torch.eye(len(self.cross), dtype=torch.float64)
        return torch.linalg.solve(self.gram + self.rows * penalty * eye, self.cross)


def run_market(args, seed: int) -> None:
    t0 = time.perf_counter()
    cfg, data, split, model = linear_start(args.preset, seed, args.n_stocks)
    weights, _ = skip_init.ridge_solutions(
        model, data, split.train, cfg.skip_ridge_penalties, cfg.batch_dates
    )
    _, chosen, _ = skip_init.choose_per_horizon(model, weights, data, split.val, cfg.batch_dates)
    scored = split.selection
    usable = [t for t in data.usable_dates(cfg.min_stocks_per_date) if split.train[0] <= t <= scored[-1]]
    rows = per_date(model, data, usable, cfg)
    refit = refit_dates(data, cfg, split)
    print(f"# market {seed}: {time.perf_counter() - t0:.0f} s, penalties {chosen}", flush=True)
    for every in [None, *args.every]:
        out: dict[str, object] = {"preset": args.preset, "market_seed": seed, "every": every}
        for j, h in enumerate(cfg.horizons):
            eq = NormalEquations(len(next(iter(rows.values()))[0][0]), j, cfg.label_clip)
            eq.add(rows, refit)
            w = eq.solve(chosen[f"{h}d"])
            ics = []
            for k, t in enumerate(scored):
                if every is not None and k % every == 0:
                    eq.add(rows, [u for u in usable if u + h <= t])
                    w = eq.solve(chosen[f"{h}d"])
                u, y = rows[t]
                ics.append(daily_ic_device(u @ w, y[:, j], [len(y)], cfg.min_stocks_per_date, True))
            out |= {f"{h}d": round(float(torch.cat(ics).nanmean()), 4), f"days_{h}d": len(eq.dates)}
        out["mean"] = round(float(np.mean([out[f"{h}d"] for h in cfg.horizons])), 4)
        print(json.dumps(out), flush=True)


def main() -> None:
    ap = tuning_market_args()
    ap.add_argument("--every", nargs="+", type=int, default=[20, 5])
    args = ap.parse_args()
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {torch.get_num_threads()} threads")
    for seed in args.market_seeds:
        run_market(args, seed)


if __name__ == "__main__":
    main()
