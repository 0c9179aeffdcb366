"""Benchmark: what the deployment refit (training/deploy.py) costs a training run.

Per market size: the default model's ridge start refitted through validation (the pass every training
already makes, ``skip_refit_through_validation``: the reference) and ``deployment_refit`` on the same
checkpoint (load, one ridge pass over every usable date, write), seconds and their ratio in one run. Every
horizon is marked as having kept the start, the most the refit can cost.

Run: ./run shell, then python bench/bench_deploy_refit.py [--sizes 1000x750 4000x1250]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench_throughput import device_name, market_inputs

from atft_dagster.features import default_registry
from atft_dagster.model import ATFTGATFAN, TrainingConfig
from atft_dagster.training.checkpoint import save_checkpoint
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.deploy import deployment_refit
from atft_dagster.training.skip_init import ridge_solutions, zero_deep_head
from atft_dagster.training.train import START, config_folds, refit_dates


def measure(n_stocks: int, n_days: int) -> dict:
    feats, graph = market_inputs(n_stocks, n_days)
    cfg = TrainingConfig()
    data = PanelTensors.for_model(feats, default_registry(), graph, cfg)
    split = config_folds(data, cfg)[0]
    model = ATFTGATFAN(data.n_features, cfg)
    zero_deep_head(model)
    penalty = {f"{h}d": 1.0 for h in cfg.horizons}
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    ridge_solutions(model, data, refit_dates(data, cfg, split), [1.0], cfg.batch_dates)
    reference = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.pt"
        save_checkpoint(
            {
                "config": cfg.model_dump(),
                "n_features": data.n_features,
                "state_dict": state,
                "epoch": START,
                "horizon_states": {START: state},
                "horizon_epochs": dict.fromkeys(penalty, START),
                "start_validation": {"penalty": penalty},
            },
            best,
        )
        t0 = time.perf_counter()
        record = deployment_refit(best, data, Path(tmp) / "deployed.pt")
        seconds = time.perf_counter() - t0
    return {
        "stocks": n_stocks,
        "days": n_days,
        "device": device_name("cpu"),
        "refit_through_validation_s": round(reference, 2),
        "refit_days": len(refit_dates(data, cfg, split)),
        "deployment_refit_s": round(seconds, 2),
        "deployment_days": len(data.usable_dates(cfg.min_stocks_per_date)),
        "ratio": round(seconds / reference, 2),
        "rows_1d": record["rows"]["1d"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["1000x750", "4000x1250"])
    args = ap.parse_args()
    print(f"# {datetime.now():%Y-%m-%d %H:%M}", flush=True)
    for size in args.sizes:
        n, d = map(int, size.split("x"))
        print(json.dumps(measure(n, d)), flush=True)


if __name__ == "__main__":
    main()
