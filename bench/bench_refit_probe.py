"""Probe (fortieth sweep): what a deployment refit of the ridge start would buy the daily rankings.

The champion that ranks tomorrow's stocks ends its fit where its validation window ends: fold 0 keeps the
selection and test windows and two gaps after it, so the last day it learnt from lies about
``selection_days + test_days + 2 * (purge + embargo)`` trading days before the first day it ranks. A horizon
that kept the ridge start could be refitted, at the penalty it chose, on every labelled day up to the latest.

Per tuning market (``--n-days`` long, so both fits fit), the penalty per horizon is chosen as the default does
(train fit, validation RankIC); then, at that penalty, three fits of the ridge start, each predicted on the
selection window with the default's gated timing and scored by agreement with the oracle (mean daily RankIC
against the true expected return): ``deployed`` = the last ``--fit-days`` usable dates ending G = selection
+ test + purge + embargo days before the validation window's end (as stale as the champion is when it ranks),
``fresh`` = the same length ending at the validation window's end, ``refit_all`` = ``--fit-days`` + G dates
ending there (what a deployment refit adds). Nothing is chosen here beyond the default's penalties; held-out
markets are refused. ``--window test`` is the held-out report after the choice: held-out markets only, the
test window scored, every fit ending one window later (with the selection window); it chooses nothing.

Run: ./run shell, then python bench/bench_refit_probe.py --preset realistic --n-stocks 1000 --market-seeds 11 12
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from bench_beta_residual_probe import linear_setup, ridge_start, zscored_rows
from bench_learning_curve import LONG_START
from bench_linear_probe import HELD_OUT

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.training.skip_init import ridge_solutions, set_skip
from atft_dagster.training.train import predict

VARIANTS = ("deployed", "fresh", "refit_all")


def date_sets(usable: list[int], val_end: int, gap: int, n: int) -> dict[str, list[int]]:
    """The three fits' dates (see the module docstring); a set shorter than asked is an error."""
    upto = [t for t in usable if t <= val_end]
    stale = [t for t in usable if t <= val_end - gap]
    sets = {"deployed": stale[-n:], "fresh": upto[-n:], "refit_all": upto[-(n + gap) :]}
    for name, dates in sets.items():
        want = n + gap if name == "refit_all" else n
        if len(dates) < want:
            raise ValueError(f"{name}: {len(dates)} usable dates, {want} asked: use a longer --n-days")
    return sets


def probe(preset: str, seed: int, n_stocks: int, n_days: int, fit_days: int, window: str) -> list[dict]:
    cfg, src, _, data, split, model = linear_setup(
        preset, seed, n_stocks, n_days=n_days, **({"start": LONG_START} if n_days > 1000 else {})
    )
    uv, yvz, cv = zscored_rows(model, data, split.val, cfg)
    u, yz, _ = zscored_rows(model, data, split.train, cfg)
    _, chosen = ridge_start(u, yz, uv, yvz, cv, cfg)
    del u, yz
    penalties = [chosen[f"{h}d"] for h in cfg.horizons]
    gap = cfg.selection_days + cfg.test_days + cfg.purge + cfg.embargo_days
    # scored on the selection window, the fits end with validation; on the test window (held-out report),
    # one window later: with selection (its labels end before the test window's purge gap does)
    scored, end = (
        (split.selection, split.val[-1]) if window == "selection" else (split.test, split.selection[-1])
    )
    sets = date_sets(data.usable_dates(cfg.min_stocks_per_date), end, gap, fit_days)
    days = [data.dates[t] for t in scored]
    truth = src.oracle(min(days), max(days))
    out = []
    for name in VARIANTS:
        dates = sets[name]
        weights, _ = ridge_solutions(model, data, dates, penalties, cfg.batch_dates)  # the refit's own solver
        set_skip(model, torch.stack([weights[p][j] for j, p in enumerate(penalties)]))
        frame = predict(model, data, scored, cfg.batch_dates).join(truth, on=["date", "code"])
        row = {
            "preset": preset,
            "market_seed": seed,
            "window": window,
            "variant": name,
            "fit_dates": [str(data.dates[dates[0]]), str(data.dates[dates[-1]])],
            "fit_days": len(dates),
            "gap": gap,
            "penalty": chosen,
        }
        for h in cfg.horizons:
            args = (f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date)
            row[f"agree_{h}d"] = oracle_agreement(frame, {"s": f"pred_{h}d"}, *args)["s"]
        row["agree_mean"] = float(np.mean([row[f"agree_{h}d"] for h in cfg.horizons]))
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        out.append(row)
    return out


def table(rows: list[dict], seeds: list[int], horizons: list[int]) -> None:
    """Agreement per variant and horizon over the markets, then each variant's change from ``deployed``."""
    got = {(r["variant"], r["market_seed"]): r for r in rows}
    keys = [f"agree_{h}d" for h in horizons] + ["agree_mean"]
    heads = [f"{h}d" for h in horizons] + ["A (mean)"]
    print(f"\nmarkets {' / '.join(map(str, seeds))}\n| variant | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(keys))
    for v in VARIANTS:
        cells = []
        for k in keys:
            xs = [got[v, s][k] for s in seeds]
            cells.append(" / ".join(f"{x:.3f}" for x in xs) + f" (**{np.mean(xs):.3f}**)")
        print(f"| {v} | " + " | ".join(cells) + " |")
    for v in VARIANTS[1:]:
        cells = []
        for k in keys:
            d = [got[v, s][k] - got["deployed", s][k] for s in seeds]
            cells.append(" / ".join(f"{x:+.3f}" for x in d) + f" (**{np.mean(d):+.3f}**)")
        print(f"| {v} − deployed | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="realistic")
    parser.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12, 13, 14, 15, 16, 17, 18])
    parser.add_argument("--n-stocks", type=int, default=1000)
    parser.add_argument(
        "--window",
        choices=("selection", "test"),
        default="selection",
        help="selection: tuning markets (the sweep); test: held-out markets only, a report that chooses nothing",
    )
    parser.add_argument("--n-days", type=int, default=1500)
    parser.add_argument(
        "--fit-days",
        type=int,
        default=461,
        help="usable dates of deployed/fresh (461: the default's refit on the 750-day benchmark markets)",
    )
    args = parser.parse_args()
    held_out = HELD_OUT & set(args.market_seeds)
    if args.window == "selection" and held_out:
        parser.error("held-out markets are not read by a sweep")
    if args.window == "test" and held_out != set(args.market_seeds):
        parser.error("the test window is read on held-out markets only, to report")
    rows = [
        r
        for s in args.market_seeds
        for r in probe(args.preset, s, args.n_stocks, args.n_days, args.fit_days, args.window)
    ]
    table(rows, args.market_seeds, [1, 5, 10, 20])


if __name__ == "__main__":
    main()
