"""Benchmark: does a change to the training path leave model quality alone? Training on the CPU, this
tree (``--precision`` fp32 or bf16) and a reference checkout (``--reference DIR``, fp32, run in a child
process on the same inputs), several training seeds each; prints the validation RankIC per horizon and the
stopping metric of each run and of each of its epochs, and the difference of the two means against the
seed-to-seed spread.

Run: ./run shell, then python bench/bench_equivalence.py --reference /path/to/old/checkout [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from atft_dagster.features import default_registry
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds, stopping_metric, train


def runs(feats: pl.DataFrame, graph: pl.DataFrame, args) -> list[dict]:
    out = []
    for seed in args.seeds:
        cfg = TrainingConfig(epochs=args.epochs, patience=args.epochs, seed=seed, ensemble_seeds=1)
        data = PanelTensors.for_model(feats, default_registry(), graph, cfg)
        split = config_folds(data, cfg)[0]
        with tempfile.TemporaryDirectory() as tmp:
            res = train(data, cfg, split, Path(tmp), {}, precision=args.precision)
        best = res.history[res.best_epoch]
        out.append(
            {
                "seed": seed,
                "best_epoch": res.best_epoch,
                "stopping_metric": res.best_val_rank_ic,
                "val_rank_ic": best["val_rank_ic"],
                "epoch_metrics": [stopping_metric(h["val_rank_ic"], cfg) for h in res.history],
                "seconds_per_epoch": res.seconds_per_epoch,
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", type=Path)
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-stocks", type=int, default=200)
    ap.add_argument("--market-seed", type=int, default=11)
    ap.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="this tree's (the reference: fp32)"
    )
    ap.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = runs(pl.read_parquet(args.child[0]), pl.read_parquet(args.child[1]), args)
        args.child[2].write_text(json.dumps(result))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_model import inputs

    from atft_dagster.market import market_preset

    _, _, feats, graph = inputs(
        market_preset("demo", seed=args.market_seed, n_stocks=args.n_stocks, n_days=750)
    )
    print(
        f"# demo market seed {args.market_seed}, {args.n_stocks} stocks, epochs {args.epochs}, CPU, this tree "
        f"{args.precision}, reference fp32"
    )
    mine = runs(feats, graph, args)
    table = {"this tree": mine}
    if args.reference:
        with tempfile.TemporaryDirectory() as tmp:
            fp, gp, rp = (Path(tmp) / n for n in ("f.parquet", "g.parquet", "r.json"))
            feats.write_parquet(fp)
            graph.write_parquet(gp)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(fp),
                str(gp),
                str(rp),
                "--epochs",
                str(args.epochs),
            ]
            cmd += ["--seeds", *map(str, args.seeds)]
            env = {
                **os.environ,
                "PYTHONPATH": f"{args.reference}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            }
            subprocess.run(cmd, env=env, check=True)
            table["reference"] = json.loads(rp.read_text())
    horizons = list(mine[0]["val_rank_ic"])
    print("| code | " + " | ".join(f"val RankIC {h}" for h in horizons) + " | stopping metric | s/epoch |")
    print("|---|" + "---|" * (len(horizons) + 2))
    for name, rs in table.items():
        cells = []
        for h in horizons:
            v = np.array([r["val_rank_ic"][h] for r in rs])
            cells.append(f"{v.mean():.4f} ± {v.std(ddof=1):.4f}")
        m = np.array([r["stopping_metric"] for r in rs])
        s = np.mean([r["seconds_per_epoch"] for r in rs])
        print(f"| {name} | " + " | ".join(cells) + f" | {m.mean():.4f} ± {m.std(ddof=1):.4f} | {s:.0f} |")
    print("| code | " + " | ".join(f"epoch {e} stopping metric" for e in range(args.epochs)) + " |")
    print("|---|" + "---|" * args.epochs)
    for name, rs in table.items():
        if all("epoch_metrics" in r for r in rs):  # an older reference script may not report them
            per = np.array([r["epoch_metrics"] for r in rs])
            cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(per.mean(0), per.std(0, ddof=1), strict=True)]
            print(f"| {name} | " + " | ".join(cells) + " |")
    if "reference" in table:
        a = np.array([r["stopping_metric"] for r in mine])
        b = np.array([r["stopping_metric"] for r in table["reference"]])
        print(
            f"difference of means {a.mean() - b.mean():+.4f}; seed-to-seed s.d. this tree {a.std(ddof=1):.4f}, "
            f"reference {b.std(ddof=1):.4f}"
        )


if __name__ == "__main__":
    main()
