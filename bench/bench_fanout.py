"""Benchmark: a 3-seed x 2-fold training as parallel Dagster steps (issue: beyond one machine).

Runs the real `train` job (plan -> one step per member -> register) with the multiprocess executor on a
persistent instance made from the repo's dagster.yaml, once with the `gpu` pool at 1 slot (members one after
another, each with all the CPU threads) and once at 2 slots (two members at once, the threads split between
them). Same data, same config; each setting runs in a fresh process of this script (its own instance and
step-process server) and the checkpoints of the previous one are removed first, so nothing resumes. Reports the run's wall time, the span from the first member's start to the last member's end,
and the most members seen running at once.
Run: ./run shell, then python bench/bench_fanout.py [--n-stocks 100 --n-days 750 --epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import torch
import yaml

from atft_dagster.definitions import build_definitions
from atft_dagster.defs.partitions import trading_days_partitions
from atft_dagster.defs.resources import SyntheticMarketResource

REPO = Path(__file__).resolve().parents[1]


def _market() -> SyntheticMarketResource:
    return SyntheticMarketResource(
        n_stocks=int(os.environ["ATFT_BENCH_STOCKS"]), n_days=int(os.environ["ATFT_BENCH_DAYS"])
    )


def train_job() -> dg.JobDefinition:
    """Reconstructed in every step process (the data folder and market come through the environment)."""
    return build_definitions(Path(os.environ["ATFT_DATA_DIR"]), _market()).resolve_job_def("train")


def _instance(home: Path, slots: int) -> dg.DagsterInstance:
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    cfg["concurrency"]["pools"]["default_limit"] = slots
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.from_config(str(home))


def _spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[float]]:
    spans: dict[str, list[float]] = {}
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is not None and ev.event_type == dg.DagsterEventType.STEP_START:
            spans[ev.step_key] = [rec.timestamp, rec.timestamp]
        elif ev is not None and ev.event_type == dg.DagsterEventType.STEP_SUCCESS:
            spans[ev.step_key][1] = rec.timestamp
    return spans


def _most_at_once(spans: list[list[float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def run_once(work: Path, slots: int, config: dict, cores: int) -> dict:
    """One training run of the prepared data with the `gpu` pool at ``slots``; the row of figures."""
    root = Path(os.environ["ATFT_DATA_DIR"])
    shutil.rmtree(root / "models", ignore_errors=True)  # nothing resumes from the previous run
    instance = _instance(work / f"home_{slots}", slots)
    threads = max(1, cores // slots)
    run_config = {
        "ops": {"model_checkpoint": {"config": config}},
        "resources": {"torch_device": {"config": {"threads": threads}}},
        "execution": {"config": {"multiprocess": {"max_concurrent": max(cores, slots) + 2}}},
    }
    t0 = time.perf_counter()
    with dg.execute_job(dg.reconstructable(train_job), instance, run_config=run_config) as res:
        wall = time.perf_counter() - t0
        assert res.success, "the training run failed"
        spans = _spans(instance, res.run_id)
    members = [v for k, v in spans.items() if ".train_member[" in k]
    assert members, "no member steps recorded"
    return {
        "gpu_slots": slots,
        "threads_per_step": threads,
        "members": len(members),
        "run_wall_s": round(wall, 1),
        "members_span_s": round(max(e for _, e in members) - min(s for s, _ in members), 1),
        "mean_member_s": round(sum(e - s for s, e in members) / len(members), 1),
        "most_at_once": _most_at_once(members),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-stocks", type=int, default=100)
    ap.add_argument("--n-days", type=int, default=750)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)  # set for the child run of one setting
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    config = {
        "epochs": args.epochs,
        "patience": args.epochs,
        "n_folds": args.folds,
        "ensemble_seeds": args.seeds,
    }
    if args.work:
        print(json.dumps(run_once(args.work, args.slots[0], config, cores)), flush=True)
        return
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}, {cores} cores), "
        f"torch {torch.__version__}; {args.n_stocks} stocks x {args.n_days} days, {args.seeds} seeds x "
        f"{args.folds} folds, {args.epochs} epochs",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="bench_fanout_"))
    root = work / "data"
    os.environ.update(
        ATFT_DATA_DIR=str(root), ATFT_BENCH_STOCKS=str(args.n_stocks), ATFT_BENCH_DAYS=str(args.n_days)
    )
    d = build_definitions(root, _market())
    keys = trading_days_partitions.get_partition_keys()
    prep = dg.DagsterInstance.ephemeral()
    tags = {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[args.n_days - 1],
    }
    assert d.resolve_job_def("ingest").execute_in_process(instance=prep, tags=tags).success
    assert d.resolve_job_def("prepare").execute_in_process(instance=prep).success
    results = []
    for slots in args.slots:
        argv = [sys.executable, __file__, "--work", str(work), "--slots", str(slots)]
        argv += ["--epochs", str(args.epochs), "--seeds", str(args.seeds), "--folds", str(args.folds)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        results.append(row)
        print(json.dumps(row), flush=True)
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            print(
                f"{r['gpu_slots']} slots vs {base['gpu_slots']}: run {base['run_wall_s'] / r['run_wall_s']:.2f}x, "
                f"members {base['members_span_s'] / r['members_span_s']:.2f}x faster"
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
