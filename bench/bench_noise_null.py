"""Benchmark: how often does the pure-noise canary's statistic exceed 3 for signals that cannot predict?

Issue 12's canary: on a market without an expected-return edge, no horizon's Newey–West t (lag h - 1) of
the test-window mean daily RankIC may exceed 3. On `pure_noise` (bench_model.bench_market) every stock has the
same expected return; on `beta_premium`, the canary before 2026-12-06, beta is priced, so every signal with a
beta, size or volatility tilt takes the realised market's path over the test days (on 120 of them, 20-day
labels hold about six independent ones). This
script scores every model input (each one a placebo: a point-in-time feature, none fitted to anything) and
iid random ranks on exactly the test rows `bench_model.py` scores, and prints, per market and horizon, the
share of placebos with |t| > 3, their 95th percentile and maximum |t|, and where a logged model's |t| falls
among them. With --tilt it also trains the ensemble's first member per market and says what its ranking
leans on and how it scores against beta-neutral labels. A last table pools the markets per horizon.
Nothing here is a choice.
Run: python bench/bench_noise_null.py [--preset pure_noise] [--market-seeds 1001 1002 1003] [--n-stocks 100]
     [--n-days N --test-days N --start YYYY-MM-DD] [--model-log LOG [--log-preset NAME]] [--tilt]
     (pure_noise without --n-days/--test-days: the canary's design, bench_model.canary_window, 960 of 1590 days)
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from bench_model import bench_market, canary_window  # bench/ is the script's folder, so on sys.path
from bench_throughput import inputs
from pool_markets import market_rows

from atft_dagster.evaluation.metrics import daily_ic, newey_west_t
from atft_dagster.features.registry import input_columns
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict
from atft_dagster.training.train import config_folds, train

N_RANDOM = 200  # iid random-rank placebos per market (their t should be sized right: the control)


def placebo_t(test: pl.DataFrame, columns: list[str], horizon: int, min_stocks: int) -> np.ndarray:
    """Newey–West t (lag h - 1) of each column's mean daily RankIC against the h-day forward return."""
    parts = test.partition_by("date", maintain_order=True)
    label = [p[f"target_{horizon}d"].to_numpy() for p in parts]
    out = []
    for col in columns:
        ic = daily_ic([p[col].to_numpy() for p in parts], label, min_stocks, rank=True)
        out.append(newey_west_t(ic, horizon - 1))
    return np.array(out)


def true_betas(market, code_dtype: pl.DataType) -> pl.DataFrame:
    """(code, beta): the simulator's true betas (a diagnostic, never a model input)."""
    return pl.DataFrame({"code": market.codes.astype(str), "beta": market.beta}).with_columns(
        pl.col("code").cast(code_dtype)
    )


def mean_daily_corr(test: pl.DataFrame, a: str, b: str) -> float:
    parts = test.partition_by("date", maintain_order=True)
    return float(
        np.nanmean(daily_ic([p[a].to_numpy() for p in parts], [p[b].to_numpy() for p in parts], 20, True))
    )


def beta_neutral(test: pl.DataFrame, horizon: int) -> pl.Series:
    """The h-day return less beta times the market's, the market's h-day return estimated per date as the
    cross-sectional mean return over the mean beta (the simulator's true betas: a diagnostic, not a model
    input). On this market it removes the only priced exposure, so nothing should predict it."""
    y, b = pl.col(f"target_{horizon}d"), pl.col("beta")
    market = (y.mean() / b.mean()).over("date")
    return test.select((y - b * market).alias("neutral"))["neutral"]


def tilt(test: pl.DataFrame, data, split, cfg: TrainingConfig, names: list[str]) -> list[str]:
    """Train the ensemble's first member (as bench_model.py does) and say what its test ranking leans on:
    the mean daily rank correlation of each horizon's prediction with the oracle (on this market: beta) and
    its three most correlated inputs; and its Newey–West t against the raw and the beta-neutral label."""
    with tempfile.TemporaryDirectory() as tmp:
        best = train(data, cfg, split, Path(tmp), {}).best_checkpoint
        pred, _ = ensemble_predict([best], data, split.test)
    test = test.join(pred.select("date", "code", *[f"pred_{h}d" for h in cfg.horizons]), on=["date", "code"])
    out = []
    for h in cfg.horizons:
        corr = {n: mean_daily_corr(test, f"pred_{h}d", n) for n in names}
        top = sorted(corr, key=lambda n: -abs(corr[n]))[:3]
        scored = test.with_columns(beta_neutral(test, h).alias(f"neutral_{h}d"))
        t_raw = placebo_t(scored, [f"pred_{h}d"], h, cfg.min_stocks_per_date)[0]
        t_neutral = placebo_t(
            scored.with_columns(pl.col(f"neutral_{h}d").alias(f"target_{h}d")),
            [f"pred_{h}d"],
            h,
            cfg.min_stocks_per_date,
        )[0]
        out.append(
            f"{h}d: t {t_raw:+.2f}, against the beta-neutral label {t_neutral:+.2f}; with the oracle "
            f"{mean_daily_corr(test, f'pred_{h}d', f'oracle_{h}d'):+.2f}; "
            + ", ".join(f"{n} {corr[n]:+.2f}" for n in top)
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[1001, 1002, 1003])
    ap.add_argument("--n-stocks", type=int, default=100)
    ap.add_argument("--n-days", type=int, help="default: 750, or the canary's design for pure_noise")
    ap.add_argument(
        "--test-days", type=int, help="default: the config's, or the canary's design for pure_noise"
    )
    ap.add_argument(
        "--start", type=date.fromisoformat, help="first market day (longer markets need an earlier one)"
    )
    ap.add_argument("--preset", default="pure_noise", help="pure_noise, beta_premium or a market preset")
    ap.add_argument("--model-log", type=Path, help="a bench_model.py log of the same markets")
    ap.add_argument("--log-preset", help="the preset's name in that log (logs before 2026-12-06: pure_noise)")
    ap.add_argument("--tilt", action="store_true", help="also train one member per market: what it leans on")
    args = ap.parse_args()
    cfg = TrainingConfig(**({"test_days": args.test_days} if args.test_days else {}))
    n_days, start = args.n_days or 750, args.start
    if args.preset == "pure_noise" and args.n_days is None and args.test_days is None:
        cfg, n_days, start = canary_window(cfg, n_days, start)
    logged = market_rows([args.model_log], args.log_preset or args.preset) if args.model_log else {}
    model_t = {(seed, h): row[("ensemble", h)][1] for seed, row in logged.items() for h in cfg.horizons}
    rng = np.random.default_rng(0)
    tilts = {}
    pooled = {h: {"features": [], "random": [], "model": []} for h in cfg.horizons}
    print(
        "| market | h | placebo features | share |t| > 3 | 95th pct |t| | max |t| | random ranks: share |t| > 3 "
        "| oracle t | model t (share of features above it) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in args.market_seeds:
        src, reg, feats, graph = inputs(bench_market(args.preset, seed, args.n_stocks, n_days, start))
        data = PanelTensors.for_model(feats, reg, graph, cfg, "cpu")
        split = config_folds(data, cfg)[0]
        days = [data.dates[i] for i in split.test]
        test = feats.filter(pl.col("date").is_in(days)).sort("date", "code")
        test = test.join(src.oracle(days[0], days[-1]), on=["date", "code"], how="left")
        market = src.market(days[-1])
        test = test.join(true_betas(market, test["code"].dtype), on="code", how="left")
        names = input_columns(feats.columns, reg)
        randoms = [f"random_{k}" for k in range(N_RANDOM)]
        test = test.with_columns(*[pl.Series(r, rng.standard_normal(test.height)) for r in randoms])
        for h in cfg.horizons:
            t = np.abs(placebo_t(test, names, h, cfg.min_stocks_per_date))
            t = t[np.isfinite(t)]
            tr = np.abs(placebo_t(test, randoms, h, cfg.min_stocks_per_date))
            oracle = placebo_t(test, [f"oracle_{h}d"], h, cfg.min_stocks_per_date)[0]
            m = model_t.get((seed, h))
            model = f"{m:.2f} ({(t > abs(m)).mean():.0%})" if m is not None else "–"
            pooled[h]["features"].append(t)
            pooled[h]["random"].append(tr)
            if m is not None:
                pooled[h]["model"].append(abs(m))
            print(
                f"| {seed} | {h} | {len(t)} | {(t > 3).mean():.0%} | {np.quantile(t, 0.95):.2f} | {t.max():.2f} "
                f"| {(tr > 3).mean():.1%} | {oracle:.2f} | {model} |",
                flush=True,
            )
        if args.tilt:
            fit = cfg.model_copy(update={"epochs": 5, "patience": 2})  # bench_model.py's settings
            tilts[seed] = tilt(test, data, split, fit, names)
    print(f"\npooled over markets {' '.join(map(str, args.market_seeds))}, test {cfg.test_days} days:\n")
    print(
        "| h | placebo features: share |t| > 3 | random ranks: share |t| > 3 | model: largest |t| (markets > 3) |"
    )
    print("|---|---|---|---|")
    for h, p in pooled.items():
        t, tr, m = np.concatenate(p["features"]), np.concatenate(p["random"]), np.array(p["model"])
        model = f"{m.max():.2f} ({(m > 3).sum()} of {len(m)})" if len(m) else "–"
        print(f"| {h} | {(t > 3).mean():.1%} of {len(t)} | {(tr > 3).mean():.1%} of {len(tr)} | {model} |")
    for seed, lines in tilts.items():
        print(f"\nmarket {seed}, the first member's test predictions (mean daily rank correlation):")
        print("\n".join(f"- {line}" for line in lines))


if __name__ == "__main__":
    main()
