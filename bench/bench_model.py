"""Benchmark: ATFT-GAT-FAN quality and speed (issue: model and training asset).

1. Quality on the default synthetic market (300 stocks, 750 days): test-period mean daily RankIC (1 day)
   of the full model and of the same model with the graph block off, as a fraction of the oracle's RankIC
   on the same test days; ridge regression on the same features as a reference.
2. Speed: seconds per epoch on this machine for 1000 stocks x 750 days (one epoch), and on a GPU when run
   there (pass --gpu-scale for 4000 x 1250).
Run: ./run shell, then python bench/bench_model.py [--epochs N] [--skip-speed] [--gpu-scale]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch

from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.features import compute_features, default_registry
from atft_dagster.features.normalise import normalise, to_arrays
from atft_dagster.graph import build_stock_graph
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.model import TrainingConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds, evaluate, load_model, train


def inputs(cfg: SyntheticMarketConfig):
    src = SyntheticSource(cfg)
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    topix, cal = src.topix(d[0], d[-1]), src.calendar(d[0], d[-1] + timedelta(days=120))
    reg = default_registry()
    feats, _ = compute_features(panel, topix, cal, reg)
    return src, reg, feats, build_stock_graph(panel, topix)


def rank_ic_on(frame: pl.DataFrame, pred: str, label: str = "target_1d") -> float:
    parts = frame.partition_by("date")
    return float(
        np.nanmean(
            daily_ic([p[pred].to_numpy() for p in parts], [p[label].to_numpy() for p in parts], 20, rank=True)
        )
    )


def quality(epochs: int, device: str) -> None:
    src, reg, feats, graph = inputs(SyntheticMarketConfig())
    base = TrainingConfig(epochs=epochs)
    data = PanelTensors(feats, reg, graph, base.horizons, base.seq_len, base.input_clip, device)
    split = config_folds(data, base)[0]
    test_dates = [data.dates[t] for t in split.test]
    oracle = src.oracle(test_dates[0], test_dates[-1]).join(
        feats.select("date", "code", "target_1d"), on=["date", "code"]
    )
    o = rank_ic_on(oracle, "oracle_1d")
    print(f"split {split.describe(data.dates)}")
    print(f"oracle test RankIC (1d): {o:.4f}")
    z = normalise(feats, reg)
    tr = z.filter(
        pl.col("date").is_in([data.dates[t] for t in split.train]) & pl.col("target_1d").is_not_null()
    )
    te = z.filter(pl.col("date").is_in(test_dates))
    X, _ = to_arrays(tr, reg.names)
    y = (
        tr.select(
            (
                (pl.col("target_1d") - pl.col("target_1d").mean().over("date"))
                / pl.col("target_1d").std().over("date")
            ).clip(-3, 3)
        )
        .to_series()
        .to_numpy()
    )
    w = np.linalg.solve(X.T @ X + 1000 * np.eye(X.shape[1]), X.T @ y)
    r = rank_ic_on(te.with_columns(pl.Series("p", to_arrays(te, reg.names)[0] @ w)), "p")
    print(f"ridge test RankIC (1d): {r:.4f} = {r / o:.2f} of oracle")
    for use_graph in (True, False):
        cfg = base.model_copy(update={"use_graph": use_graph})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = train(data, cfg, split, Path(tmp), {"manifest": reg.hash})
            model, _ = load_model(Path(res.best_checkpoint), device)
            ric, _, _ = evaluate(model, data, split.test, cfg.batch_dates)
        name = "full model" if use_graph else "graph block off"
        print(
            f"{name}: test RankIC (1d) {ric['1d']:.4f} = {ric['1d'] / o:.2f} of oracle; best epoch {res.best_epoch} of {res.epochs_run}; "
            f"{res.seconds_per_epoch:.1f} s/epoch; {res.n_parameters:,} parameters; {time.perf_counter() - t0:.0f} s"
        )


def speed(n_stocks: int, n_days: int, device: str) -> None:
    src, reg, feats, graph = inputs(
        SyntheticMarketConfig(n_stocks=n_stocks, n_days=n_days, start=date(2019, 1, 4))
    )
    cfg = TrainingConfig(epochs=1, val_days=20, test_days=20)
    data = PanelTensors(feats, reg, graph, cfg.horizons, cfg.seq_len, cfg.input_clip, device)
    split = config_folds(data, cfg)[0]
    with tempfile.TemporaryDirectory() as tmp:
        res = train(data, cfg, split, Path(tmp), {}, precision="bf16" if device == "cuda" else "fp32")
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"{n_stocks} stocks x {n_days} days on {name}: {res.seconds_per_epoch:.1f} s per epoch ({len(split.train)} training dates), {res.samples_per_second:,.0f} stock-samples/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=TrainingConfig().epochs)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--gpu-scale", action="store_true")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}), device {device}")
    if not args.skip_quality:
        quality(args.epochs, device)
    if not args.skip_speed:
        speed(1000, 750, device)
        if args.gpu_scale:
            speed(4000, 1250, device)


if __name__ == "__main__":
    main()
