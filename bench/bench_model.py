"""Benchmark: ATFT-GAT-FAN quality and speed.

1. Quality, one table per market preset (demo, realistic, and the pure-noise canary): one row per model
   (seed ensemble, its first member alone, graph block off, ridge, LightGBM, momentum, oracle), one column
   per horizon: test-window mean daily RankIC, mean ± s.d. over held-out market seeds, and the mean
   Newey-West t. The table is written into docs/benchmarks.md between two markers, with date and machine.
2. Speed: seconds per epoch, split into phases, on this machine for 1000 stocks x 750 days, and on a GPU
   when run there (pass --gpu-scale for 4000 x 1250); bench_throughput.py has the full set of sizes.
Run: ./run shell, then python bench/bench_model.py [--epochs N] [--n-stocks N] [--skip-speed] [--gpu-scale]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch
from bench_throughput import inputs  # bench/ is the script's folder, so on sys.path

from atft_dagster.evaluation.baselines import BaselineConfig, factor_baselines, learned_baselines
from atft_dagster.evaluation.report import oracle_agreement, score_models
from atft_dagster.market import SyntheticMarketConfig, market_preset, pure_noise_market
from atft_dagster.market.simulator import ORACLE_VERSION
from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline.evaluate import (
    DEPLOYED,
    MODEL,
    baseline_windows,
    deployed_predictions,
    model_columns,
)
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict, member_seeds
from atft_dagster.training.linear_graph import linear_graph_baseline
from atft_dagster.training.train import config_folds, train

# "deployed at the test start" (docs/benchmarks.md, forty-first sweep): each fitted model refitted, at what it
# chose, on every usable date through the selection window (labels end in the purge gap before the test)
DEPLOYED_ROWS = {
    "ensemble": "ensemble, deployed",
    "graph_off": "graph_off, deployed",
    "ridge": "ridge, deployed",
    "lightgbm": "lightgbm, deployed",
}
MODELS = (
    "ensemble",
    "ensemble, timing off",
    "ensemble, ungated timing",
    "single_seed",
    "graph_off",
    "linear_graph",
    "ridge",
    "lightgbm",
    "momentum",
    "reversal",
    "oracle",
    *DEPLOYED_ROWS.values(),
)
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
MARK = "<!-- bench_model quality table -->"


def market_run(
    market: SyntheticMarketConfig, cfg: TrainingConfig, device: str, graph_off: bool, timed: float = 0.0
) -> dict:
    """Test-window RankIC and Newey-West t per model and horizon on one market (walk-forward fold 0),
    plus the ensemble's selection-window RankIC (what a choice between configs would read). The same
    ensemble is also scored with skip timing off (where the config times) and, with ``timed`` > 0, with
    ungated skip timing at that half-life (the option's other defaults): timing acts at prediction only."""
    src, reg, feats, graph = inputs(market)
    data = PanelTensors.for_model(feats, reg, graph, cfg, device)
    split = config_folds(data, cfg)[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            train(data, cfg.model_copy(update={"seed": s}), split, Path(tmp) / str(s), {}).best_checkpoint
            for s in member_seeds(cfg.seed, cfg.ensemble_seeds)
        ]
        ens, members = ensemble_predict(paths, data, split.test)
        ens = ens.join(
            deployed_predictions(paths, data, split, Path(tmp), "deployed", evaluated=ens),
            on=["date", "code"],
        )
        sel, _ = ensemble_predict(paths, data, split.selection)
        frame = ens
        other = {"off": {"skip_timing_half_life": 0.0}} if cfg.skip_timing_half_life > 0 else {}
        if timed > 0:
            other["ungated"] = {"skip_timing_half_life": timed, "skip_timing_gate": False}
        for name, timing in other.items():
            tm, _ = ensemble_predict(paths, data, split.test, timing=timing)
            frame = frame.join(
                tm.select(
                    "date", "code", *[pl.col(f"pred_{h}d").alias(f"{name}_{h}d") for h in cfg.horizons]
                ),
                on=["date", "code"],
            )
        for i, m in enumerate(members):
            frame = frame.join(
                m.select(
                    "date", "code", *[pl.col(f"pred_{h}d").alias(f"member{i}_{h}d") for h in cfg.horizons]
                ),
                on=["date", "code"],
            )
        if graph_off:
            off = train(data, cfg.model_copy(update={"use_graph": False}), split, Path(tmp) / "off", {})
            o, _ = ensemble_predict([off.best_checkpoint], data, split.test)
            frame = frame.join(
                o.select(
                    "date", "code", *[pl.col(f"pred_{h}d").alias(f"graph_off_{h}d") for h in cfg.horizons]
                ),
                on=["date", "code"],
            ).join(
                deployed_predictions(
                    [off.best_checkpoint], data, split, Path(tmp), "graph_off_deployed", evaluated=o
                ),
                on=["date", "code"],
            )
    lin, _ = linear_graph_baseline(
        data, cfg, split, BaselineConfig().linear_graph_penalties, cfg.min_stocks_per_date
    )
    frame = frame.join(lin, on=["date", "code"], how="left")
    keys = frame.select("date", "code")
    windows = baseline_windows(data, cfg, split, deployed=True)
    fit = learned_baselines(
        feats,
        reg,
        windows,
        keys,
        cfg.horizons,
        input_clip=cfg.input_clip,
        label_clip=cfg.label_clip,
        min_stocks=cfg.min_stocks_per_date,
        seed=cfg.seed,
    )
    frame = frame.join(factor_baselines(feats, keys), on=["date", "code"], how="left").join(
        fit.predictions, on=["date", "code"], how="left"
    )
    frame = frame.join(src.oracle(frame["date"].min(), frame["date"].max()), on=["date", "code"], how="left")
    out: dict = {}
    agreement: dict[str, float] = {}  # "model hd" -> mean daily RankIC against the h-day oracle
    for h in cfg.horizons:
        rename = {MODEL: "ensemble", MODEL + DEPLOYED: DEPLOYED_ROWS["ensemble"]}
        rename.update({m + DEPLOYED: name for m, name in DEPLOYED_ROWS.items() if m != "ensemble"})
        named = {rename.get(k, k): v for k, v in model_columns(h, frame).items()}
        cols = {
            "ensemble": named.pop("ensemble"),
            **{f"member{i}": f"member{i}_{h}d" for i in range(len(members))},
            **({"ensemble, timing off": f"off_{h}d"} if f"off_{h}d" in frame.columns else {}),
            **({"ensemble, ungated timing": f"ungated_{h}d"} if f"ungated_{h}d" in frame.columns else {}),
        }
        cols.update(named)
        reports, _ = score_models(frame, cols, f"label_{h}d", 20, h - 1)
        for name, r in reports.items():
            out[(name, h)] = (r.rank_ic, r.rank_ic_t)
        others = {n: c for n, c in cols.items() if n != "oracle" and not n.startswith("member")}
        for name, a in oracle_agreement(frame, others, f"label_{h}d", f"oracle_{h}d", 20).items():
            agreement[f"{name} {h}d"] = a
        out[("single_seed", h)] = [out.pop((f"member{i}", h)) for i in range(len(members))]
        sr, _ = score_models(sel, {"ensemble": f"pred_{h}d"}, f"label_{h}d", 20, h - 1)
        out[("selection:ensemble", h)] = (sr["ensemble"].rank_ic, sr["ensemble"].rank_ic_t)
    print(f"  split {split.describe(data.dates)}", flush=True)
    return out, agreement


def quality(args, device: str) -> str:
    cfg = TrainingConfig(
        **{
            "epochs": args.epochs,
            "patience": args.patience,
            "ensemble_seeds": args.ensemble_seeds,
            **json.loads(args.overrides),
        }
    )
    lines = [
        MARK,
        f"Measured {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}) by `python bench/bench_model.py "
        f"--n-stocks {args.n_stocks} --epochs {args.epochs} --patience {args.patience} --market-seeds "
        f"{' '.join(map(str, args.market_seeds))}"
        + f" --presets {' '.join(args.presets)}"
        + (f" --n-days {args.n_days}" if args.n_days != 750 else "")
        + (f" --start {args.start}" if args.start else "")
        + (
            f" --canary-test-days {args.canary_test_days}"
            if args.canary_test_days != CANARY_TEST_DAYS
            else ""
        )
        + (f" --overrides '{args.overrides}'" if args.overrides != "{}" else "")
        + (f" --timed-row {args.timed_row:g}" if args.timed_row > 0 else "")
        + "`. Walk-forward fold 0 of each market: "
        f"{args.n_stocks} stocks x {args.n_days} days, validation {cfg.val_days}, selection {cfg.selection_days}, "
        f"test {cfg.test_days} days, gaps {cfg.purge + cfg.embargo_days}. Ensemble of {cfg.ensemble_seeds} training "
        f"seeds. Cells: test-window mean daily RankIC, mean ± s.d. over the market seeds (never used to tune the model or "
        f"its config), then the mean Newey-West t (lag h - 1) and the largest |t| of any one market in brackets; `single_seed` is every ensemble "
        f"member alone, mean ± s.d. over training seeds x market seeds.",
        "",
    ]
    for preset in args.presets:
        results, agreements = [], []
        pcfg, n_days, start = cfg, args.n_days, args.start
        if preset == "pure_noise" and args.canary_test_days > 0:
            pcfg, n_days, start = canary_window(cfg, n_days, start, args.canary_test_days)
        for seed in args.market_seeds:
            t0 = time.perf_counter()
            market = bench_market(preset, seed, args.n_stocks, n_days, start)
            print(f"{preset} market seed {seed}", flush=True)
            scores, agreement = market_run(
                market, pcfg, device, graph_off=preset not in CANARIES, timed=args.timed_row
            )
            results.append(scores)
            agreements.append(agreement)
            raw = {f"{k[0]} {k[1]}d": v for k, v in scores.items()}
            line = {"preset": preset, "market_seed": seed, "oracle_version": ORACLE_VERSION, "rank_ic_t": raw}
            line["oracle_agreement"] = agreement
            print(json.dumps(line), flush=True)
            print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
        window = f" (test {pcfg.test_days} days of {n_days}-day markets)" if pcfg is not cfg else ""
        lines += [f"**{preset}**{window}", "", *model_table(results, cfg.horizons)]
        lines += paired_table(results, cfg.horizons)
        lines += paired_table(results, cfg.horizons, DEPLOYED_ROWS["ensemble"])
        lines += agreement_table(agreements, cfg.horizons)
        print("\n".join(lines), flush=True)
    lines.append(MARK)
    return "\n".join(lines)


CANARIES = ("pure_noise", "beta_premium")
CANARY_TEST_DAYS = 960  # the canary's test window: Newey-West (lag h - 1) is near its nominal size there
CANARY_START = date(2019, 1, 4)  # so that a market that much longer still ends before the calendar does


def canary_window(
    cfg: TrainingConfig, n_days: int, start: date | None, test_days: int = CANARY_TEST_DAYS
) -> tuple[TrainingConfig, int, date | None]:
    """The pure-noise canary's design (docs/benchmarks.md, "The pure-noise canary rebuilt"): a test window
    of ``test_days``, the market longer by as much, so that train, validation and selection keep theirs."""
    if cfg.test_days == test_days:
        return cfg, n_days, start
    return (
        cfg.model_copy(update={"test_days": test_days}),
        n_days + test_days - cfg.test_days,
        start or CANARY_START,
    )


def bench_market(preset: str, seed: int, n_stocks: int, n_days: int, start: date | None = None):
    """A named market preset, or one of the two canaries: ``pure_noise`` (equal expected returns, the
    issue's canary since 2026-12-06) and ``beta_premium`` (every effect off but the market drift kept,
    so beta is priced: the canary of the logs before then, which call it ``pure_noise``)."""
    fields = {"seed": seed, "n_stocks": n_stocks, "n_days": n_days, **({"start": start} if start else {})}
    if preset == "pure_noise":
        return pure_noise_market(**fields)
    if preset == "beta_premium":
        return pure_noise_market(**fields, market_drift=market_preset("demo").market_drift)
    return market_preset(preset, **fields)


def model_table(results: list[dict], horizons: list[int]) -> list[str]:
    """One row per model present, one cell per horizon, over the markets of ``results``."""
    lines = ["| model | " + " | ".join(f"{h}d" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
    for name in (*MODELS, "selection:ensemble"):
        if (name, horizons[0]) not in results[0]:
            continue
        # single_seed: every member of every market (training seeds x market seeds)
        cells = [
            cell([p for r in results for p in (r[(name, h)] if name == "single_seed" else [r[(name, h)]])])
            for h in horizons
        ]
        label = "ensemble, **selection window**" if name.startswith("selection") else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def spread(x: np.ndarray) -> float:
    """Sample s.d.; nan for a single market (no spread to measure)."""
    return float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def cell(pairs: list) -> str:
    """One table cell from (RankIC, t) pairs, one per market (or member): mean ± s.d. of the RankIC, then the
    mean t and, after a slash, the largest |t| of any one market — a per-market significance bar (the
    pure-noise canary) is judged on that, not on the mean."""
    ric = np.array([p[0] for p in pairs])
    t = np.array([p[1] for p in pairs])
    if np.isnan(ric).all():  # a constant ranking (the pure-noise canary's oracle) has no RankIC
        return "– (constant)"
    return f"{ric.mean():.4f} ± {spread(ric):.4f} ({t.mean():.1f} / {np.abs(t).max():.1f})"


def paired_table(results: list[dict], horizons: list[int], base: str = "ensemble") -> list[str]:
    """``base`` minus each other model, market by market: mean ± s.d. of the differences and on how
    many markets ``base`` scored higher (the models share each market's test window, so the paired
    spread is the one a "beats X" claim has to clear). The evaluated ensemble is paired with the evaluated
    models, the deployed one with the deployed models, the unfitted factors and the oracle."""
    if (base, horizons[0]) not in results[0]:
        return []
    deployed = set(DEPLOYED_ROWS.values())
    if base in deployed:
        rivals = [*deployed, "momentum", "reversal", "oracle", "ensemble"]
    else:
        rivals = [n for n in MODELS if n not in deployed]
    lines = [
        f"Paired: {base} minus each model, per market (mean ± s.d. over the markets; markets won)",
        "",
        f"| {base} − | " + " | ".join(f"{h}d" for h in horizons) + " |",
        "|---|" + "---|" * len(horizons),
    ]
    for name in MODELS:
        if name in (base, "single_seed") or name not in rivals or (name, horizons[0]) not in results[0]:
            continue
        diffs = [np.array([r[(base, h)][0] - r[(name, h)][0] for r in results]) for h in horizons]
        if all(np.isnan(d).all() for d in diffs):  # a constant ranking has nothing to pair
            continue
        cells = [f"{d.mean():+.4f} ± {spread(d):.4f} ({int((d > 0).sum())}/{len(d)})" for d in diffs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def agreement_table(agreements: list[dict[str, float]], horizons: list[int]) -> list[str]:
    """Each model's agreement with the oracle (mean daily RankIC against the true h-day expected return;
    ``report.oracle_agreement``), mean ± s.d. over the markets: how closely it ranks like the truth, free of
    the realised returns' noise. Empty where no market logged it (or the oracle is constant)."""
    names = [n for n in MODELS if all(f"{n} {h}d" in a for a in agreements for h in horizons)]
    if not agreements or not names:
        return []
    lines = [
        "Agreement with the oracle (mean daily RankIC against the true expected return; mean ± s.d. over the "
        "markets)",
        "",
        "| model | " + " | ".join(f"{h}d" for h in horizons) + " |",
        "|---|" + "---|" * len(horizons),
    ]
    for name in names:
        vals = [np.array([a[f"{name} {h}d"] for a in agreements]) for h in horizons]
        if all(np.isnan(v).all() for v in vals):
            continue
        lines.append(f"| {name} | " + " | ".join(f"{v.mean():.3f} ± {spread(v):.3f}" for v in vals) + " |")
    return [*lines, ""]


def write_doc(table: str) -> None:
    text = DOC.read_text()
    if text.count(MARK) >= 2:
        head, _, rest = text.partition(MARK)
        _, _, tail = rest.partition(MARK)
        text = head + table + tail
    else:
        text += "\n" + table + "\n"
    DOC.write_text(text)


def speed(n_stocks: int, n_days: int, device: str) -> None:
    """Seconds per epoch with the per-phase split (batch assembly, forward, backward, optimiser,
    validation), samples/s and peak GPU memory: ``bench_throughput.py`` at one size, default batch."""
    import bench_throughput

    feats, graph = bench_throughput.market_inputs(n_stocks, n_days)
    args = argparse.Namespace(
        epochs=2, batch_dates=[TrainingConfig().batch_dates], no_phases=False, profile_steps=0, out=None
    )
    bench_throughput.run_size(feats, graph, args, device, "bench_model --skip-quality")
    print(bench_throughput.table(bench_throughput.ROWS))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=TrainingConfig().epochs)
    ap.add_argument("--patience", type=int, default=TrainingConfig().patience)
    ap.add_argument("--ensemble-seeds", type=int, default=TrainingConfig().ensemble_seeds)
    ap.add_argument("--overrides", default="{}", help="JSON of TrainingConfig fields, e.g. a chosen variant")
    ap.add_argument(
        "--timed-row",
        type=float,
        default=0.0,
        metavar="HALF_LIFE",
        help="also score the same ensemble with ungated skip timing at this half-life (prediction time only)",
    )
    ap.add_argument("--presets", nargs="+", default=["demo", "realistic", "pure_noise"])
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[1001, 1002, 1003])
    ap.add_argument("--n-stocks", type=int, default=300)
    ap.add_argument("--n-days", type=int, default=750)
    ap.add_argument(
        "--start", type=date.fromisoformat, help="first market day (longer markets need an earlier one)"
    )
    ap.add_argument(
        "--canary-test-days",
        type=int,
        default=CANARY_TEST_DAYS,
        help="the pure_noise preset's test window, its markets lengthened to match (0: as the other presets)",
    )
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--gpu-scale", action="store_true")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}), device {device}")
    if not args.skip_quality:
        table = quality(args, device)
        if not args.no_write:
            write_doc(table)
    if not args.skip_speed:
        speed(1000, 750, device)
        if args.gpu_scale:
            speed(4000, 1250, device)


if __name__ == "__main__":
    main()
