"""Benchmark: how closely one-line factors rank like the truth, on the tuning markets' selection windows.

Per market and horizon, the agreement with the oracle (``report.oracle_agreement``: mean daily RankIC of
the factor against the true h-day expected return) of momentum (``ret_20d``), a longer momentum
(``ret_60d``), short-term reversal (``-ret_1d``) and market beta (``beta_60d``), on the rows of walk-forward
fold 0's selection window. No fit, no choice: it says which simple priors a model's longer horizons could
lean on where its own fit points away from the truth (thirty-first sweep). Held-out markets are refused.
``--by-regime`` adds the same agreement on the selection window's stress-regime dates and on the others
(the simulator's regime; the thirty-fifth sweep found the ridge start's 5-20-day rankings against the truth
on stress dates).

Run: ./run shell, then python bench/bench_factor_agreement.py --preset realistic --n-stocks 1000 --market-seeds 11 12 13 14
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
from bench_linear_probe import tuning_market_args
from bench_skip_timing import agreement_table
from bench_throughput import inputs

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.horizons import HORIZONS
from atft_dagster.market import market_preset
from atft_dagster.market.simulator import STRESS_REGIME
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds

FACTORS = {
    "momentum": pl.col("ret_20d"),
    "momentum_60d": pl.col("ret_60d"),
    "reversal": -pl.col("ret_1d"),
    "beta": pl.col("beta_60d"),
}


def market_agreement(preset: str, seed: int, n_stocks: int, by_regime: bool = False) -> dict[str, float]:
    """``"<factor> <h>d"`` -> the factor's selection-window agreement with the h-day oracle; ``by_regime``
    adds ``"<factor> <h>d stress"`` and ``"... other"`` (NaN where the window has no such date) and
    ``"stress days"``."""
    cfg = TrainingConfig()
    src, reg, feats, graph = inputs(market_preset(preset, seed=seed, n_stocks=n_stocks))
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    dates = [data.dates[t] for t in config_folds(data, cfg)[0].selection]
    frame = feats.filter(pl.col("date").is_in(dates)).select(
        "date", "code", *[f"target_{h}d" for h in HORIZONS], *[e.alias(n) for n, e in FACTORS.items()]
    )
    frame = frame.join(src.oracle(min(dates), max(dates)), on=["date", "code"], how="left")
    parts = {"": frame}
    out = {}
    if by_regime:
        market = src.market()
        regime = dict(zip(market.days, market.regime.tolist(), strict=True))
        stress = [d for d in dates if regime[d] == STRESS_REGIME]
        parts |= {
            " stress": frame.filter(pl.col("date").is_in(stress)),
            " other": frame.filter(~pl.col("date").is_in(stress)),
        }
        out["stress days"] = float(len(stress))
    cols = {n: n for n in FACTORS}
    for tag, part in parts.items():
        for h in HORIZONS:
            agree = (
                oracle_agreement(part, cols, f"target_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date)
                if part.height
                else dict.fromkeys(cols, float("nan"))
            )
            for name, a in agree.items():
                out[f"{name} {h}d{tag}"] = a
    return out


def main() -> None:
    parser = tuning_market_args("realistic", (11, 12, 13, 14), 1000)
    parser.add_argument("--by-regime", action="store_true", help="also on stress-regime dates and the others")
    args = parser.parse_args()
    rows = {}
    for seed in args.market_seeds:
        rows[seed] = market_agreement(args.preset, seed, args.n_stocks, args.by_regime)
        line = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks}
        print(json.dumps(line | {k: round(v, 4) for k, v in rows[seed].items()}), flush=True)
    seeds = args.market_seeds
    print(
        f"\n{args.preset}, {args.n_stocks} stocks: agreement on the selection window, market "
        + " / ".join(map(str, seeds))
    )
    table_rows = [
        {"market_seed": s, "variant": name} | {f"agree_{h}d": rows[s][f"{name} {h}d"] for h in HORIZONS}
        for s in seeds
        for name in FACTORS
    ]
    agreement_table(table_rows, seeds, tuple(FACTORS))
    if args.by_regime:
        hot = [s for s in seeds if rows[s]["stress days"]]
        print(
            "\n5-20-day mean agreement on stress dates | on the others, markets "
            + " / ".join(f"{s} ({rows[s]['stress days']:.0f} d)" for s in hot)
        )
        print("| factor | stress dates | other dates |\n|---|---|---|")
        for name in FACTORS:
            cells = [
                " / ".join(f"{np.mean([rows[s][f'{name} {h}d{tag}'] for h in (5, 10, 20)]):.3f}" for s in hot)
                for tag in (" stress", " other")
            ]
            print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
