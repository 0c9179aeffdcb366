"""Benchmark: the figures of record against the corrected oracle (2026-12-06, the regime added 2026-12-07).

Until 2026-12-06 the simulator's oracle left out ``beta * E[m]``, the market factor's expected move (E[m] =
``market_drift``): the true expected return of a day is ``mu + beta * market_drift``. Until 2026-12-07 the
h-day oracle also took every later day's momentum strength at its calm/normal sign, where `realistic`
reverses it in stress (``bench_oracle_regime.py``). This script re-scores the oracle on exactly the test rows
`bench_model.py` scored for the logged markets (walk-forward fold 0; the rows and labels come from the same
prediction path, with an untrained model whose predictions are not read), checks that the old oracle, rebuilt
as the regime-ignoring one less ``h * beta * market_drift``, reproduces the logged oracle figure, and prints
the logged ensemble's share of the old, the premium-corrected and the current (premium and regime) oracle.
Nothing is trained and nothing is chosen.
Run: python bench/bench_oracle_premium.py --preset realistic --n-stocks 1000 --logs LOG [LOG ...] [--replace 1001]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
from bench_model import bench_market
from bench_noise_null import true_betas
from bench_throughput import inputs
from pool_markets import market_rows

from atft_dagster.evaluation.baselines import factor_baselines
from atft_dagster.evaluation.report import score_models
from atft_dagster.market.simulator import rebuild_horizon_oracle
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds, predict


def oracle_scores(preset: str, seed: int, n_stocks: int, cfg: TrainingConfig) -> dict[tuple[str, int], float]:
    """(old | premium | new, horizon) -> test-window mean daily RankIC of that oracle, as bench_model
    scores it. ``new``: the simulator's oracle now; ``premium``: the same with the regime ignored at h > 1
    (2026-12-06's correction alone); ``old``: that less ``h * beta * market_drift`` (the oracle the logs used)."""
    market = bench_market(preset, seed, n_stocks, 750)
    src, reg, feats, graph = inputs(market)
    data = PanelTensors.for_model(feats, reg, graph, cfg, "cpu")
    split = config_folds(data, cfg)[0]
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update={"skip_timing_half_life": 0.0}))
    frame = predict(model, data, split.test, cfg.batch_dates).select("date", "code", "^label_.*$")
    # bench_model scores every model on the rows all of them cover: the factor baselines' nulls drop rows
    factors = factor_baselines(feats, frame.select("date", "code"))
    frame = frame.join(factors, on=["date", "code"], how="left").drop_nulls()
    first, last = frame["date"].min(), frame["date"].max()
    sim = src.market(last)
    ignoring = replace(sim, oracle=rebuild_horizon_oracle(sim, regime_aware=False)).oracle_frame()
    ignoring = ignoring.filter(pl.col("date").is_between(first, last)).rename(
        {f"oracle_{h}d": f"premium_{h}d" for h in cfg.horizons}
    )
    frame = frame.join(src.oracle(first, last), on=["date", "code"], how="left")
    frame = frame.join(ignoring, on=["date", "code"], how="left")
    betas = true_betas(sim, frame["code"].dtype)
    frame = frame.join(betas, on="code", how="left").with_columns(
        beta_premium=pl.col("beta") * market.market_drift
    )
    out = {}
    for h in cfg.horizons:
        old = frame.with_columns((pl.col(f"premium_{h}d") - h * pl.col("beta_premium")).alias("old"))
        cols = {"new": f"oracle_{h}d", "premium": f"premium_{h}d", "old": "old"}
        reports, _ = score_models(old, cols, f"label_{h}d", 20, h - 1)
        out.update({(k, h): r.rank_ic for k, r in reports.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--n-stocks", type=int, default=1000)
    ap.add_argument("--logs", nargs="+", type=Path, required=True)
    ap.add_argument("--replace", nargs="*", type=int, default=[])
    args = ap.parse_args()
    cfg = TrainingConfig()
    rows = market_rows(args.logs, args.preset, set(args.replace))
    seeds = sorted(rows)
    print(f"**{args.preset}**, markets {' '.join(map(str, seeds))}, {args.n_stocks} stocks\n")
    print(
        "| market | h | ensemble | oracle logged | old, rebuilt | premium corrected | premium and regime "
        "| share of old | share of premium corrected | share of premium and regime |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    kinds = ("old", "premium", "new")
    shares = {h: {k: [] for k in ("ens", *kinds)} for h in cfg.horizons}
    for seed in seeds:
        score = oracle_scores(args.preset, seed, args.n_stocks, cfg)
        for h in cfg.horizons:
            ens, logged = rows[seed][("ensemble", h)][0], rows[seed][("oracle", h)][0]
            if not np.isclose(score[("old", h)], logged, atol=1e-9):
                raise SystemExit(
                    f"market {seed} {h}d: rebuilt old oracle {score[('old', h)]} != logged {logged}"
                )
            shares[h]["ens"].append(ens)
            for k in kinds:
                shares[h][k].append(score[(k, h)])
            print(
                f"| {seed} | {h} | {ens:.4f} | {logged:.4f} | "
                + " | ".join(f"{score[(k, h)]:.4f}" for k in kinds)
                + " | "
                + " | ".join(f"{ens / score[(k, h)]:.3f}" for k in kinds)
                + " |",
                flush=True,
            )
    print("\n(old -> premium corrected -> premium and regime; s.e. of the last mean of shares)")
    for h, s in shares.items():
        ens = np.array(s["ens"])
        ors = {k: np.array(s[k]) for k in kinds}
        ratio = " -> ".join(f"{ens.mean() / ors[k].mean():.3f}" for k in kinds)
        mean_sh = " -> ".join(f"{(ens / ors[k]).mean():.3f}" for k in kinds)
        se = (ens / ors["new"]).std(ddof=1) / np.sqrt(len(ens))
        oracle = " -> ".join(f"{ors[k].mean():.4f}" for k in kinds)
        print(
            f"{h}d: ratio of the means {ratio}; mean of the shares {mean_sh} (s.e. {se:.3f}); oracle mean {oracle}"
        )


if __name__ == "__main__":
    main()
