"""Measurement: how much closer to the truth the ridge start gets with a longer history per fold.

The open realistic targets of issue 12 sit within noise of their bars, and every lever on the 750-day
benchmark markets (336 train days) moved the agreement with the oracle by less than the bars asked. This
asks whether the gaps are data-limited: the default ridge start (``bench_beta_residual_probe.ridge_start``,
train window, penalty per horizon on validation, predicted as the default does), momentum (``ret_20d``) and
market beta (``beta_60d``), scored by the selection window's agreement with the oracle on tuning markets of
``--n-days`` days (1500: about 1086 train days). A market of another length is another draw, so its
selection window differs too; ``--train-days N`` fits on the last N train days only, which compares history
lengths on the same windows (1500 days with ``--train-days 336`` against 1500 days in full). Nothing is
chosen on it; held-out markets are refused.

Run: ./run shell, then python bench/bench_history_probe.py --preset realistic --n-stocks 1000 --n-days 1500 --market-seeds 11 12 13 14 15 16 17 18
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import polars as pl
from bench_beta_residual_probe import linear_setup, ridge_start, zscored_rows
from bench_learning_curve import LONG_START
from bench_linear_probe import tuning_market_args

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.training.skip_init import set_skip
from atft_dagster.training.train import predict

FACTORS = {"momentum": pl.col("ret_20d"), "beta": pl.col("beta_60d")}


def probe(
    preset: str, seed: int, n_stocks: int, n_days: int, train_days: list[int], start: date | None = None
) -> list[dict]:
    """One row per length in ``train_days`` (0 = the whole train window), all on the same market."""
    # the calendar ends in 2027: a longer market starts earlier (as in bench_learning_curve)
    early = {"start": start or LONG_START} if n_days > 1000 else {}
    cfg, src, feats, data, split, model = linear_setup(preset, seed, n_stocks, n_days=n_days, **early)

    sel_days = [data.dates[t] for t in split.selection]
    truth = src.oracle(min(sel_days), max(sel_days)).join(
        feats.select("date", "code", *[e.alias(n) for n, e in FACTORS.items()]),
        on=["date", "code"],
        how="left",
    )
    (uv, yvz, cv), out = zscored_rows(model, data, split.val, cfg), []
    for n in train_days:
        train = split.train[-n:] if n else split.train
        u, yz, _ = zscored_rows(model, data, train, cfg)
        weight, chosen = ridge_start(u, yz, uv, yvz, cv, cfg)
        set_skip(model, weight)
        frame = predict(model, data, split.selection, cfg.batch_dates).join(truth, on=["date", "code"])
        row = {"market_seed": seed, "n_days": n_days, "train_days": len(train), "penalty": chosen}
        for h in cfg.horizons:  # the start on its own rows (as the sweeps score it), the factors on theirs
            args = (f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date)
            row[f"start_{h}d"] = oracle_agreement(frame, {"s": f"pred_{h}d"}, *args)["s"]
            for name, a in oracle_agreement(frame, {f: f for f in FACTORS}, *args).items():
                row[f"{name}_{h}d"] = a
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = tuning_market_args("realistic", (11, 12, 13, 14, 15, 16, 17, 18), 1000)
    parser.add_argument("--n-days", type=int, default=1500)
    parser.add_argument(
        "--train-days", type=int, nargs="+", default=[0], help="fit on the last N train days (0 = all)"
    )
    parser.add_argument("--start", type=date.fromisoformat, help="first session of a market over 1000 days")
    args = parser.parse_args()
    rows = [
        r
        for s in args.market_seeds
        for r in probe(args.preset, s, args.n_stocks, args.n_days, args.train_days, args.start)
    ]
    seeds = " / ".join(map(str, args.market_seeds))
    print(f"\n{args.preset}, {args.n_stocks} stocks x {args.n_days} days")
    print(f"| ranking (train days) | 1 d, market {seeds} (mean) | L = 5-20 d mean (mean) |\n|---|---|---|")
    lengths = list(dict.fromkeys(r["train_days"] for r in rows))
    names = [("start", n) for n in lengths] + [(f, lengths[0]) for f in FACTORS]
    for name, n in names:
        part = [r for r in rows if r["train_days"] == n]
        one = [r[f"{name}_1d"] for r in part]
        long = [np.mean([r[f"{name}_{h}d"] for h in (5, 10, 20)]) for r in part]
        cells = [" / ".join(f"{x:.3f}" for x in xs) + f" ({np.mean(xs):.3f})" for xs in (one, long)]
        print(f"| {name} ({n}) | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
