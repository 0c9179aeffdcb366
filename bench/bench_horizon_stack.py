"""Benchmark: horizon stacking — the 1-day head's ranking added to each longer horizon's (28th sweep).

An h-day return starts with tomorrow's, so its expectation holds the 1-day expectation: on `realistic`
tuning markets the 1-day oracle alone ranks the 5-day return almost as well as the 5-day oracle. The
1-day head is the model's best-estimated one (1-day labels carry the least noise per unit of signal).
Candidate: for h > 1 rank by ``z(pred_h) + w_h z(pred_1d)`` per date (z: cross-sectional z-score), with
``w_h`` chosen per horizon on the validation window from ``WEIGHTS`` (ties: the smallest). Scored on the
selection window of the tuning markets; fixed-w rows are printed for information.

Per market: one training of the defaults (one seed, ``--epochs``/``--patience``), predictions on the
validation and selection windows with its own (gated) skip timing.
Run: ./run shell, then python bench/bench_horizon_stack.py --preset realistic --n-stocks 1000 --market-seeds 11 12
"""

from __future__ import annotations

import time

import polars as pl
from bench_blend import predictions, zscore_by_date
from bench_skip_timing import add_scores, run_sweep, trained_default

from atft_dagster.evaluation.baselines import DailyRankIC

WEIGHTS = (0.0, 0.5, 1.0, 2.0)
FIXED = (0.5, 1.0, 2.0)


def stacked(frame: pl.DataFrame, weights: dict[int, float], horizons: list[int]) -> pl.DataFrame:
    """``stack_{h}d`` = z(pred_h) + w_h z(pred_1d); ``stack_1d`` = pred_1d."""
    first = zscore_by_date(f"pred_{horizons[0]}d")
    return frame.with_columns(
        pl.col(f"pred_{horizons[0]}d").alias(f"stack_{horizons[0]}d"),
        *[(zscore_by_date(f"pred_{h}d") + weights[h] * first).alias(f"stack_{h}d") for h in horizons[1:]],
    )


def choose_weights(frame: pl.DataFrame, horizons: list[int], min_stocks: int) -> dict[int, float]:
    """Per horizon > 1, the weight of ``WEIGHTS`` with the best mean daily RankIC on ``frame``."""
    day = frame["date"].to_numpy()
    out = {}
    for h in horizons[1:]:
        score = DailyRankIC(day, frame[f"label_{h}d"].to_numpy(), min_stocks)
        best = None
        for w in WEIGHTS:
            s = score(stacked(frame, dict.fromkeys(horizons[1:], w), horizons)[f"stack_{h}d"].to_numpy())
            if best is None or s > best[1] + 1e-12:
                best = (w, s)
        out[h] = best[0]
    return out


def run_market(args, seed: int) -> list[dict]:
    src, data, cfg, split, model, t0 = trained_default(args, seed)
    fit_s = time.perf_counter() - t0
    horizons = list(cfg.horizons)
    keys = ["date", "code"]
    cols = [*keys, *[f"pred_{h}d" for h in horizons], *[f"label_{h}d" for h in horizons]]
    val = predictions(model, data, split.val, cfg).select(cols)
    chosen = choose_weights(val, horizons, cfg.min_stocks_per_date)
    sel = predictions(model, data, split.selection, cfg).select(cols)
    sel = sel.join(src.oracle(sel["date"].min(), sel["date"].max()), on=keys, how="left")
    day = sel["date"].to_numpy()
    rows = []
    variants = [
        ("default", None),
        ("validated", chosen),
        *[(f"w={w}", dict.fromkeys(horizons[1:], w)) for w in FIXED],
    ]
    for name, weights in variants:
        frame = sel if weights is None else stacked(sel, weights, horizons)
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "variant": name}
        row["fit_s"] = round(fit_s, 1)
        if name == "validated":
            row["weights"] = {f"{h}d": w for h, w in chosen.items()}
        rows.append(add_scores(row, frame, day, "selection", cfg, "pred" if weights is None else "stack"))
    return rows


def main() -> None:
    run_sweep(run_market, ("default", "validated", *[f"w={w}" for w in FIXED]))


if __name__ == "__main__":
    main()
