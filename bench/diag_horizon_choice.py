"""Diagnosis (chooses nothing): on one market, each ensemble member's per-horizon choice between the ridge
start and its trained epochs — the validation RankIC of the start and of every epoch per horizon, the epoch
taken, and the selection-window RankIC of the start and of the chosen model. Reads no test window.
Run: ./run shell -c "cd bench && python diag_horizon_choice.py --preset demo --seed 1012 --n-stocks 200"
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_model import bench_market
from bench_throughput import inputs

from atft_dagster.evaluation.report import score_models
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict, member_seeds
from atft_dagster.training.train import config_folds, train


def diag_args() -> argparse.Namespace:
    """One market's options: preset, seed, stocks, and the training's epochs and patience."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--n-stocks", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=2)
    return ap.parse_args()


def main() -> None:
    args = diag_args()
    cfg = TrainingConfig(epochs=args.epochs, patience=args.patience)
    src, reg, feats, graph = inputs(bench_market(args.preset, args.seed, args.n_stocks, 750))
    data = PanelTensors.for_model(feats, reg, graph, cfg, "cpu")
    split = config_folds(data, cfg)[0]
    with tempfile.TemporaryDirectory() as tmp:
        for s in member_seeds(cfg.seed, cfg.ensemble_seeds):
            res = train(data, cfg.model_copy(update={"seed": s}), split, Path(tmp) / str(s), {})
            sel, _ = ensemble_predict([res.best_checkpoint], data, split.selection)
            chosen = {}
            for h in cfg.horizons:
                r, _ = score_models(sel, {"m": f"pred_{h}d"}, f"label_{h}d", cfg.min_stocks_per_date, h - 1)
                chosen[f"{h}d"] = round(r["m"].rank_ic, 4)
            print(
                json.dumps(
                    {
                        "member": s,
                        "horizon_epochs": res.horizon_epochs,
                        "start_val": {k: round(v, 4) for k, v in res.start_validation["val_rank_ic"].items()},
                        "epoch_val": [
                            {k: round(v, 4) for k, v in e["val_rank_ic"].items()} for e in res.history
                        ],
                        "chosen_selection": chosen,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
