"""Benchmark: training throughput and daily prediction latency (issue "GPU throughput").

Per market size and date-batch size: seconds per epoch (first epoch and the steady epochs after it),
stock-samples/s, peak GPU memory, and one extra epoch with a device sync at every phase boundary that splits
the epoch into batch assembly, forward (model + loss), backward, optimiser and validation. Then the daily
prediction for the largest market: checkpoint -> written JPX CSV, cold (first call) and warm.

``--reference DIR`` also times DIR's copy of the package (e.g. a ``git worktree`` of the commit before a
change) on the last size, in a child process reading the same inputs, with the first batch size: the ratio
is measured in one run.

Run: ./run shell, then python bench/bench_throughput.py [--sizes 1000x750 4000x1250] [--batch-dates 4 16]
[--precision fp32 bf16]
Prints one JSON line per measurement (``--out FILE`` appends them too) and a table at the end.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import torch

from atft_dagster.features import compute_features, default_registry
from atft_dagster.graph import build_stock_graph
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.model import ATFTGATFAN, TrainingConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.train import config_folds, train

try:
    from atft_dagster.training.memory import keep_freed_memory
except ImportError:  # a --reference checkout from before it: runs with the allocator's defaults

    def keep_freed_memory() -> bool:
        return False


START = date(2019, 1, 4)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def market_tables(cfg: SyntheticMarketConfig):
    """(source, market panel, TOPIX, registry, features with targets) of a synthetic market."""
    src = SyntheticSource(cfg)
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    topix, cal = src.topix(d[0], d[-1]), src.calendar(d[0], d[-1] + timedelta(days=120))
    reg = default_registry()
    feats, _ = compute_features(panel, topix, cal, reg)
    return src, panel, topix, reg, feats


def inputs(cfg: SyntheticMarketConfig):
    """(source, registry, features with targets, stock graph) of a synthetic market."""
    src, panel, topix, reg, feats = market_tables(cfg)
    return src, reg, feats, build_stock_graph(panel, topix)


def market_inputs(n_stocks: int, n_days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    _, _, feats, graph = inputs(SyntheticMarketConfig(n_stocks=n_stocks, n_days=n_days, start=START))
    return feats, graph


ROWS: list[dict] = []
GATED_HISTORY = 750  # trading days a gated daily prediction reads (three years, the presets' market length)


def emit(row: dict, out: Path | None) -> None:
    ROWS.append(row)
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with out.open("a") as f:
            f.write(line + "\n")


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bf16 on a GPU, fp32 on a CPU (the defaults a user gets)."""
    if precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return precision


def epochs(data: PanelTensors, cfg: TrainingConfig, device: str, phases: bool, precision: str) -> dict:
    """Train ``cfg.epochs`` epochs; with ``phases`` (when this package's train() has them) one more synced
    epoch gives the per-phase split."""
    split = config_folds(data, cfg)[0]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train(data, cfg, split, Path(tmp) / "a", {}, precision=precision)
        wall = time.perf_counter() - t0
        secs = [h["seconds"] for h in res.history]
        vals = [h.get("phase_seconds", {}).get("validation") for h in res.history]
        row = {
            "train_dates": len(split.train),
            "val_dates": len(split.val),
            "epoch_s_first": secs[0],
            "epoch_s_steady": min(secs[1:]) if len(secs) > 1 else secs[0],
            "samples_per_s": max(h["samples_per_second"] for h in res.history),
            "validation_s": vals[-1],
            "wall_s": wall,
        }
        if device == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if phases and device == "cpu" and "phase_seconds" in res.history[-1]:
            row["phases_s"] = res.history[-1]["phase_seconds"]  # the CPU runs in step: already exact
        elif phases and "profile_phases" in inspect.signature(train).parameters:
            synced = train(
                data,
                cfg.model_copy(update={"epochs": 1}),
                split,
                Path(tmp) / "b",
                {},
                precision=precision,
                profile_phases=True,
            )
            row["phases_s"] = synced.history[0]["phase_seconds"]
    return row


def reference_run(reference: Path, feats_path: Path, graph_path: Path, args, size: str) -> None:
    """Time the reference package in a child process on the same inputs (stdout passes through)."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(feats_path),
        str(graph_path),
        "--batch-dates",
        str(args.batch_dates[0]),
        "--epochs",
        str(args.epochs),
        "--label",
        f"reference {size}",
        "--keep-freed-memory",
        args.keep_freed_memory,
        "--precision",
        args.reference_precision,
    ]
    if args.out:
        cmd += ["--out", str(args.out)]
    env = {**os.environ, "PYTHONPATH": f"{reference}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(cmd, env=env)
    if done.returncode:
        print(f"reference run failed with exit status {done.returncode}", flush=True)


def run_size(feats: pl.DataFrame, graph: pl.DataFrame, args, device: str, label: str) -> PanelTensors:
    t0 = time.perf_counter()
    base = TrainingConfig(val_days=20, test_days=20, epochs=args.epochs)
    data = PanelTensors(
        feats, default_registry(), graph, base.horizons, base.seq_len, base.input_clip, device
    )
    tensors_s = time.perf_counter() - t0
    for bd, precision in [(bd, p) for p in args.precision for bd in args.batch_dates]:
        precision = resolve_precision(precision, device)
        # the learning rate follows the batch: sqrt scaling from the default 4 dates
        cfg = base.model_copy(update={"batch_dates": bd, "lr": base.lr * (bd / base.batch_dates) ** 0.5})
        row = epochs(data, cfg, device, not args.no_phases, precision)
        if args.profile_steps and bd == args.batch_dates[0]:
            profile_steps(data, cfg, device, args.profile_steps, precision)
        emit(
            {
                "what": "train",
                "label": label,
                "device": device_name(device),
                "precision": precision,
                "stocks": int(len(data.codes)),
                "days": len(data.dates),
                "batch_dates": bd,
                "package": str(Path(inspect.getfile(PanelTensors)).parents[2]),
                "tensors_s": tensors_s,
                **row,
            },
            args.out,
        )
    return data


def prediction(
    n_stocks: int,
    device: str,
    out: Path | None,
    repeats: int = 3,
    timing_half_life: float = 0.0,
    gate: bool = False,
) -> None:
    """Daily prediction for ``n_stocks``: a 3-member checkpoint set (untrained weights; the time does not
    depend on them) -> predict_day -> CSV on disk. The market is just long enough for one day's window
    (and, with skip timing, the history it reads; with its gate, which reads all of it, GATED_HISTORY
    days). With the gate, ``cold_s`` is the day before read from the whole history (the pass kept, as
    the daily_predictions asset keeps it), and ``warm_s`` the day itself continuing that kept pass."""
    from atft_dagster.training.checkpoint import save_checkpoint
    from atft_dagster.training.daily import predict_day, ranking_csv
    from atft_dagster.training.skip_timing import timing_history

    cfg = TrainingConfig(skip_timing_half_life=timing_half_life, skip_timing_gate=gate)
    precision = "bf16" if device == "cuda" else "fp32"
    history = GATED_HISTORY if gate else cfg.seq_len + 260 + timing_history(cfg)
    feats, graph = market_inputs(n_stocks, history)
    reg = default_registry()
    day = feats["date"].max()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for seed in range(cfg.ensemble_seeds):
            torch.manual_seed(seed)
            model = ATFTGATFAN(len(reg.names), cfg)
            path = Path(tmp) / f"m{seed}.pt"
            save_checkpoint(
                {"config": cfg.model_dump(), "state_dict": model.state_dict(), "n_features": len(reg.names)},
                path,
            )
            paths.append(str(path))
        times, notes = [], []
        if gate:  # the day before, cold (the whole history); then the day, continuing its kept pass
            folder = Path(tmp) / "timing"
            before = feats.filter(pl.col("date") < day)["date"].max()
            t0 = time.perf_counter()
            predict_day(paths, feats, reg, graph, before, device, precision, folder, notes)
            times.append(time.perf_counter() - t0)
            kept = {p: p.read_bytes() for p in folder.rglob("*.pt")}
        for _ in range(repeats - (1 if gate else 0)):
            if gate:
                for p in set(folder.rglob("*.pt")) - set(kept):  # each repeat continues the same state
                    p.unlink()
                for p, b in kept.items():
                    p.write_bytes(b)
            t0 = time.perf_counter()
            preds = predict_day(
                paths, feats, reg, graph, day, device, precision, folder if gate else None, notes
            )
            (Path(tmp) / "out.csv").write_text(ranking_csv(preds))
            times.append(time.perf_counter() - t0)
    emit(
        {
            "what": "predict_day",
            "device": device_name(device),
            "stocks": preds.height,
            "members": len(paths),
            "skip_timing_half_life": timing_half_life,
            "skip_timing_gate": gate,
            "market_days": history,
            "cold_s": times[0],
            "warm_s": min(times[1:]),
            **({"timing": sorted(set(notes))} if notes else {}),
        },
        out,
    )


def profile_steps(data: PanelTensors, cfg: TrainingConfig, device: str, steps: int, precision: str) -> None:
    """Kernel-level profile of ``steps`` training steps (after as many warm-up steps): the top operators
    by their own device time (CPU time on a CPU)."""
    from torch.profiler import ProfilerActivity, profile

    from atft_dagster.model.loss import MultiHorizonLoss
    from atft_dagster.training.train import _forward

    split = config_folds(data, cfg)[0]
    torch.manual_seed(0)
    model = ATFTGATFAN(data.n_features, cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True)
    loss_fn = MultiHorizonLoss(cfg)
    dev = torch.device(device)

    def step(b: int) -> None:
        batch = data.batch(split.train[b * cfg.batch_dates : (b + 1) * cfg.batch_dates])
        out = _forward(model, batch, dev, precision)
        loss, _ = loss_fn(out.point.float(), out.quantiles.float(), batch.y, batch.date_index, batch.counts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for b in range(steps):
        step(b)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for b in range(steps):
            step(b)
        if device == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60), flush=True)


def table(rows: list[dict]) -> str:
    lines = [
        "| run | device | stocks × days | batch dates | s/epoch first | s/epoch steady | samples/s | "
        "batch | forward | backward | optimiser | validation | peak GPU GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["what"] != "train":
            continue
        ph = r.get("phases_s", {})
        phases = [f"{ph[k]:.2f}" if k in ph else "—" for k in ("batch", "forward", "backward", "optimiser")]
        cells = [
            r["label"],
            f"{r['device']} {r.get('precision', '')}".strip(),
            f"{r['stocks']} × {r['days']}",
            str(r["batch_dates"]),
            f"{r['epoch_s_first']:.1f}",
            f"{r['epoch_s_steady']:.1f}",
            f"{r['samples_per_s']:,.0f}",
            *phases,
            f"{r['validation_s']:.2f}" if r.get("validation_s") is not None else "—",
            f"{r['peak_gpu_gib']:.1f}" if "peak_gpu_gib" in r else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for r in rows:
        if r["what"] == "predict_day":
            lines.append(
                f"\npredict_day, {r['stocks']} stocks, {r['members']} members, {r['device']}, "
                f"skip timing half-life {r.get('skip_timing_half_life', 0):g}"
                f"{', gated, ' + str(r['market_days']) + ' days' if r.get('skip_timing_gate') else ''}: "
                f"cold {r['cold_s']:.2f} s, warm {r['warm_s']:.2f} s (checkpoint -> CSV)"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["1000x750"])
    ap.add_argument("--batch-dates", nargs="+", type=int, default=[4])
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs (the first includes warm-up)")
    ap.add_argument("--reference", type=Path, help="a checkout of the package before the change")
    ap.add_argument("--predict-stocks", type=int, default=0, help="time predict_day for this many stocks")
    ap.add_argument(
        "--predict-timing",
        nargs="*",
        type=float,
        default=[],
        help="also time predict_day with skip timing at these half-lives (after the plain one)",
    )
    ap.add_argument(
        "--predict-gate", action="store_true", help="and with the timing gate (half-life 20), 750 days"
    )
    ap.add_argument("--no-phases", action="store_true")
    ap.add_argument("--profile-steps", type=int, default=0, help="print a kernel profile of N steps")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--label", default="this tree")
    ap.add_argument(
        "--keep-freed-memory",
        choices=("on", "off"),
        default="on",
        help="CPU: the allocator setting TorchDevice applies by default (training/memory.py)",
    )
    ap.add_argument(
        "--precision",
        nargs="+",
        choices=("auto", "fp32", "bf16"),
        default=["auto"],
        help="this tree's precision(s), each timed in turn; auto = bf16 on a GPU, fp32 on a CPU",
    )
    ap.add_argument(
        "--reference-precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="the reference's (code before 2026-11-28 ran bf16 on a GPU only)",
    )
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and args.keep_freed_memory == "on":
        keep_freed_memory()
    if args.child:
        run_size(pl.read_parquet(args.child[0]), pl.read_parquet(args.child[1]), args, device, args.label)
        return
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {device_name(device)}", flush=True)
    for k, size in enumerate(args.sizes):
        n, d = map(int, size.split("x"))
        t0 = time.perf_counter()
        feats, graph = market_inputs(n, d)
        emit({"what": "inputs", "size": size, "seconds": time.perf_counter() - t0}, args.out)
        data = run_size(feats, graph, args, device, args.label)
        if k == len(args.sizes) - 1 and args.reference:
            with tempfile.TemporaryDirectory() as tmp:
                fp, gp = Path(tmp) / "f.parquet", Path(tmp) / "g.parquet"
                feats.write_parquet(fp)
                graph.write_parquet(gp)
                reference_run(args.reference, fp, gp, args, size)
        del data, feats, graph
        if device == "cuda":
            torch.cuda.empty_cache()
    if args.predict_stocks:
        for half_life in [0.0, *args.predict_timing]:
            prediction(args.predict_stocks, device, args.out, timing_half_life=half_life)
        if args.predict_gate:
            prediction(args.predict_stocks, device, args.out, timing_half_life=20.0, gate=True)
    rows = [json.loads(x) for x in args.out.read_text().splitlines()] if args.out else ROWS
    print(table(rows))


if __name__ == "__main__":
    main()
