"""Benchmark: how much 1-day signal a *linear* model finds in the last day's inputs, with and without the
neighbours' weighted mean of those inputs (the graph's lead-lag channel), on the tuning markets.

Ridge on per-date z-scored, clipped 1-day labels, fitted on the train window of walk-forward fold 0, scored
as the selection window's mean daily RankIC (never the test window). It is the measurement behind
``TrainingConfig.input_skip`` and ``neighbour_weight_power`` (docs/benchmarks.md, "Model variants").

Run: ./run shell, then python bench/bench_linear_probe.py [--market-seeds 11 12] [--n-stocks 200]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from bench_throughput import inputs
from scipy.stats import spearmanr

from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN, neighbour_mean
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.linear_graph import NO_DEEP_PATH
from atft_dagster.training.train import config_folds

# inputs: x_L only, or x_L with the neighbour mean under edge weight max(corr, 0)^p
PROBES = {"x_L": None, "x_L + mean, p=0": 0.0, "x_L + mean, p=1": 1.0, "x_L + mean, p=2": 2.0}
PENALTIES = (1e1, 1e3, 1e4, 1e5)


def design(data: PanelTensors, t: int, power: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Date t's ridge inputs (x_L, with the neighbour mean under weight max(corr, 0)^power unless None)
    and its labels, one column per horizon."""
    b = data.batch([t])
    last = b.x[:, -1]
    if power is not None:
        weight = b.edge_attr[:, 0].clamp_min(0) ** power
        last = torch.cat([last, neighbour_mean(last, b.edge_index, weight)], dim=-1)
    return last.numpy().astype(np.float64), b.y.numpy()


def stacked(days: list[tuple[np.ndarray, np.ndarray]], j: int, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """The days' rows with a label of horizon column j, labels z-scored per date and clipped."""
    xs, ys = [], []
    for x, y in days:
        ok = np.isfinite(y[:, j])
        z = (y[ok, j] - y[ok, j].mean()) / max(y[ok, j].std(), 1e-12)
        xs.append(x[ok])
        ys.append(np.clip(z, -clip, clip))
    return np.concatenate(xs), np.concatenate(ys)


def mean_rank_ic(days: list[tuple[np.ndarray, np.ndarray]], j: int, beta: np.ndarray) -> float:
    """Mean daily RankIC of x @ beta against the labels of horizon column j."""
    ics = [spearmanr(x[np.isfinite(y[:, j])] @ beta, y[np.isfinite(y[:, j]), j])[0] for x, y in days]
    return float(np.mean(ics))


def probe(seed: int, n_stocks: int, preset: str) -> dict[str, float]:
    _, reg, feats, graph = inputs(market_preset(preset, seed=seed, n_stocks=n_stocks))
    cfg = TrainingConfig()
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    out = {}
    for name, power in PROBES.items():
        x, y = stacked([design(data, t, power) for t in split.train], 0, cfg.label_clip)
        days = [design(data, t, power) for t in split.selection]
        for lam in PENALTIES:
            beta = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)
            out[f"{name} @ {lam:g}"] = mean_rank_ic(days, 0, beta)
    return out


def linear_start(preset: str, seed: int, n_stocks: int):
    """(config, tensors, fold 0, model in linear mode) of a tuning market with the default graph: the
    setting of the probes that fit the model's skip without its deep path."""
    cfg = TrainingConfig()
    _, reg, feats, graph = inputs(market_preset(preset, seed=seed, n_stocks=n_stocks))
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update=NO_DEEP_PATH))
    return cfg, data, config_folds(data, cfg)[0], model


# markets whose test windows report the figures of record, read (1001-1009 by 2026-12-06) and to come, and
# the canary's null-calibration markets (2001-2010): no sweep or probe reads them
HELD_OUT = frozenset(range(1001, 2000)) | frozenset(range(2001, 2011))


class TuningParser(argparse.ArgumentParser):
    """A sweep's or probe's options; parsing refuses the held-out markets."""

    def parse_args(
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if HELD_OUT & set(parsed.market_seeds):
            self.error("held-out markets are not read by a sweep")
        return parsed


def tuning_market_args(
    preset: str = "demo", seeds: tuple[int, ...] = (11, 12), n_stocks: int = 200
) -> TuningParser:
    """The common options of the sweeps and probes: preset, tuning market seeds, stocks."""
    ap = TuningParser()
    ap.add_argument("--preset", default=preset)
    ap.add_argument("--market-seeds", nargs="+", type=int, default=list(seeds))
    ap.add_argument("--n-stocks", type=int, default=n_stocks)
    return ap


def main() -> None:
    args = tuning_market_args().parse_args()
    rows = {s: probe(s, args.n_stocks, args.preset) for s in args.market_seeds}
    for s, r in rows.items():
        print(json.dumps({"market_seed": s, **r}))
    print("| inputs | penalty | " + " | ".join(f"seed {s}" for s in rows) + " | mean |")
    print("|---|---|" + "---|" * (len(rows) + 1))
    for key in next(iter(rows.values())):
        name, lam = key.split(" @ ")
        vals = [r[key] for r in rows.values()]
        print(f"| {name} | {lam} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {np.mean(vals):.4f} |")


if __name__ == "__main__":
    main()
