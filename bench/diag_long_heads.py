"""Diagnosis (chooses nothing): on one tuning market, what the trained long heads rank by that the ridge start
does not. One default member (one seed) and the model's own ridge start (refitted through validation, no deep
path) are scored on the validation and selection windows. Per horizon and window it prints the mean daily
Spearman correlation of each model's predictions with the oracle, with the start's predictions (refitted, and
as fitted on the train window, which training starts from), with the stocks' betas and with their last 20-day
return; and the correlation over days of the daily RankIC gain (trained minus the refitted start) with the
market factor's return over the label's horizon. Every model predicts without skip timing (which acts at 1 day
only, behind its gate; it was shut on these markets' selection windows). Reads no test window.
Run: ./run shell -c "cd bench && python diag_long_heads.py --preset demo --seed 33"
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from bench_skip_timing import linear_model
from bench_throughput import market_tables
from diag_horizon_choice import diag_args

from atft_dagster.evaluation.baselines import DailyRankIC
from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds, load_model, predict, train


def daily_corr(frame: pl.DataFrame, a: str, b: str) -> float:
    """Mean over dates of the Spearman correlation of columns ``a`` and ``b`` (dates with 20+ stocks)."""
    return DailyRankIC(frame["date"].to_numpy(), frame[b].to_numpy(), 20)(frame[a].to_numpy())


def daily_series(score: DailyRankIC, pred: np.ndarray) -> np.ndarray:
    g = score.groups
    return np.asarray(daily_ic([pred[i] for i in g], [score.label[i] for i in g], score.min_stocks, True))


def main() -> None:
    args = diag_args()
    src, panel, topix, reg, feats = market_tables(
        market_preset(args.preset, seed=args.seed, n_stocks=args.n_stocks)
    )
    cfg = TrainingConfig(epochs=args.epochs, patience=args.patience, ensemble_seeds=1)
    data = PanelTensors.for_model(feats, reg, build_stock_graph(panel, topix, GraphConfig()), cfg)
    split = config_folds(data, cfg)[0]
    with tempfile.TemporaryDirectory() as tmp:
        res = train(data, cfg, split, Path(tmp), {})
        trained = load_model(res.best_checkpoint)[0]
    start = linear_model(data, cfg, split)
    train_start = linear_model(data, cfg, split, refit=False)  # what training starts from and compares with
    market = src.market()
    day_index = {d: i for i, d in enumerate(market.days)}
    code_index = {c: i for i, c in enumerate(market.codes)}
    past20 = np.full_like(market.returns, np.nan)
    cum = np.cumsum(np.log1p(market.returns), axis=0)
    past20[20:] = cum[20:] - cum[:-20]
    mcum = np.concatenate([[0.0], np.cumsum(market.market_factor)])
    print(json.dumps({"market_seed": args.seed, "epochs": res.horizon_epochs}), flush=True)
    for window in ("val", "selection"):
        dates = getattr(split, window)
        f = predict(trained, data, dates, cfg.batch_dates)
        f = f.join(src.oracle(f["date"].min(), f["date"].max()), on=["date", "code"], how="left")
        for name, model in (("start", start), ("train_start", train_start)):
            s = predict(model, data, dates, cfg.batch_dates)
            f = f.join(
                s.select("date", "code", *[pl.col(f"pred_{h}d").alias(f"{name}_{h}d") for h in cfg.horizons]),
                on=["date", "code"],
                how="left",
            )
        f = f.sort("date", "code")
        t_i = np.array([day_index[d] for d in f["date"].to_list()])
        s_i = np.array([code_index[c] for c in f["code"].to_list()])
        f = f.with_columns(pl.Series("beta", market.beta[s_i]), pl.Series("past20", past20[t_i, s_i]))
        for h in cfg.horizons:
            row = {"window": window, "horizon": h}
            for name, col in (
                ("trained", f"pred_{h}d"),
                ("start", f"start_{h}d"),
                ("oracle", f"oracle_{h}d"),
            ):
                row[name] = {
                    k: round(daily_corr(f, col, ref), 3)
                    for k, ref in (
                        ("oracle", f"oracle_{h}d"),
                        ("start", f"start_{h}d"),
                        ("train_start", f"train_start_{h}d"),
                        ("beta", "beta"),
                        ("past20", "past20"),
                    )
                }
            days = f["date"].to_numpy()
            score = DailyRankIC(days, f[f"label_{h}d"].to_numpy(), cfg.min_stocks_per_date)
            gain = daily_series(score, f[f"pred_{h}d"].to_numpy()) - daily_series(
                score, f[f"start_{h}d"].to_numpy()
            )
            uniq = np.unique(days)
            t0 = np.array([day_index[d] for d in pl.Series(uniq).cast(pl.Date).to_list()])
            fwd = mcum[np.minimum(t0 + 1 + h, len(mcum) - 1)] - mcum[t0 + 1]
            ok = np.isfinite(gain)
            row["gain_mean"] = round(float(np.nanmean(gain)), 4)
            row["gain_vs_market"] = round(float(np.corrcoef(gain[ok], fwd[ok])[0, 1]), 3)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
