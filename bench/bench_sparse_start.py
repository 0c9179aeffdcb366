"""Benchmark: is the ridge start's gap to the oracle estimation noise that a sparser fit removes (fifteenth
sweep)? Fits of the skip's inputs [x_L, m_L] per horizon, each family's strength chosen on the validation
window, refitted through validation as the defaults do, scored on the selection window of the tuning markets
(their test windows are never read). Linear mode: the model's skip without the deep path.

Families: ``ridge`` (the default start), ``lasso`` (on inputs scaled to unit variance), ``relaxed`` (the
lasso's support, then ridge at per-row penalty ``RELAXED_PENALTY`` on it), ``enet`` (elastic net, l1 ratio
0.5), ``avg`` (mean of a ridge and a lasso, both strengths chosen together), ``pcr`` (ridge-less regression on
the leading principal components). scikit-learn comes with mlflow.

Run: ./run shell, then python bench/bench_sparse_start.py --preset realistic --n-stocks 1000
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Callable
from datetime import datetime

import numpy as np
import torch
from bench_linear_probe import linear_start, tuning_market_args
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso

from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training import skip_init
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.train import refit_dates

LASSO_ALPHAS = (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)
ENET_ALPHAS = (1e-3, 3e-3, 6e-3, 1.2e-2, 2.4e-2)
PCR_COMPONENTS = (5, 10, 20, 40, 80, 160)
RELAXED_PENALTY = 0.1
FAMILIES = ("ridge", "lasso", "relaxed", "enet", "avg", "pcr")

Window = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]  # u, raw y, z-scored y, rows per date
Fit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (u, z-scored y of one horizon) -> weights


def gather(model: ATFTGATFAN, data: PanelTensors, dates: list[int], cfg: TrainingConfig) -> Window:
    parts = list(skip_init.skip_batches(model, data, dates, cfg.batch_dates))
    u, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    counts = [c for p in parts for c in p[2]]
    return u, y, skip_init.zscore_by_date(y, counts, cfg.label_clip), counts


def ridge(p: float) -> Fit:
    def fit(u, yz):
        ok = torch.isfinite(yz)
        uh = u[ok]
        eye = torch.eye(u.shape[1], dtype=u.dtype)
        return torch.linalg.solve(uh.T @ uh + int(ok.sum()) * p * eye, uh.T @ yz[ok])

    return fit


def sklearn_fit(make) -> Fit:
    """A scikit-learn linear estimator on inputs scaled to unit variance, weights mapped back."""

    def fit(u, yz):
        ok = torch.isfinite(yz)
        x, y = u[ok].numpy(), yz[ok].numpy()
        sd = x.std(0) + 1e-12
        est = make().fit(x / sd, y)
        return torch.from_numpy(est.coef_ / sd).double()

    return fit


def lasso(a: float) -> Fit:
    return sklearn_fit(lambda: Lasso(alpha=a, fit_intercept=False, precompute=True, max_iter=5000, tol=1e-5))


def enet(a: float) -> Fit:
    return sklearn_fit(
        lambda: ElasticNet(
            alpha=a, l1_ratio=0.5, fit_intercept=False, precompute=True, max_iter=5000, tol=1e-5
        )
    )


def relaxed(a: float) -> Fit:
    def fit(u, yz):
        keep = lasso(a)(u, yz) != 0
        out = torch.zeros(u.shape[1], dtype=u.dtype)
        if keep.any():
            out[keep] = ridge(RELAXED_PENALTY)(u[:, keep], yz)
        return out

    return fit


def average(p: float, a: float) -> Fit:
    return lambda u, yz: 0.5 * (ridge(p)(u, yz) + lasso(a)(u, yz))


def pcr(k: int, basis: torch.Tensor) -> Fit:
    def fit(u, yz):
        ok = torch.isfinite(yz)
        z = u[ok] @ basis[:, :k]
        eye = torch.eye(k, dtype=u.dtype)
        return basis[:, :k] @ torch.linalg.solve(z.T @ z + 1e-9 * eye, z.T @ yz[ok])

    return fit


def candidates(family: str, cfg: TrainingConfig, train: Window) -> dict[object, Fit]:
    if family == "ridge":
        return {p: ridge(p) for p in cfg.skip_ridge_penalties}
    if family == "lasso":
        return {a: lasso(a) for a in LASSO_ALPHAS}
    if family == "relaxed":
        return {a: relaxed(a) for a in LASSO_ALPHAS}
    if family == "enet":
        return {a: enet(a) for a in ENET_ALPHAS}
    if family == "avg":
        return {(p, a): average(p, a) for p in cfg.skip_ridge_penalties for a in LASSO_ALPHAS}
    u, _, yz, _ = train  # pcr: principal axes of the train window's inputs
    c = u[torch.isfinite(yz[:, 0])]
    basis = torch.linalg.eigh(c.T @ c / len(c))[1].flip(1)
    return {k: pcr(k, basis) for k in PCR_COMPONENTS}


def mean_ic(w: Window, weights: torch.Tensor, j: int, cfg: TrainingConfig) -> float:
    u, y, _, counts = w
    return float(daily_ic_device(u @ weights, y[:, j], counts, cfg.min_stocks_per_date, True).nanmean())


def run_market(args, seed: int) -> None:
    t0 = time.perf_counter()
    cfg, data, split, model = linear_start(args.preset, seed, args.n_stocks)
    windows = [split.train, split.val, split.selection, refit_dates(data, cfg, split)]
    train, val, sel, refit = (gather(model, data, d, cfg) for d in windows)
    print(f"# market {seed}: {train[0].shape[0]} train rows, {time.perf_counter() - t0:.0f} s", flush=True)
    for family in args.families:
        t1 = time.perf_counter()
        fits = candidates(family, cfg, train)
        row: dict[str, object] = {"preset": args.preset, "market_seed": seed, "family": family}
        for j, h in enumerate(cfg.horizons):
            scores = {c: mean_ic(val, f(train[0], train[2][:, j]), j, cfg) for c, f in fits.items()}
            pick = max(scores, key=scores.get)
            w = fits[pick](refit[0], refit[2][:, j])
            row |= {f"{h}d": round(mean_ic(sel, w, j, cfg), 4), f"pick_{h}d": pick}
            row |= {f"nonzero_{h}d": int((w != 0).sum()), f"best_val_{h}d": round(scores[pick], 4)}
        row["mean"] = round(float(np.mean([row[f"{h}d"] for h in cfg.horizons])), 4)
        row["s"] = round(time.perf_counter() - t1, 1)
        print(json.dumps(row), flush=True)


def main() -> None:
    ap = tuning_market_args()
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {torch.get_num_threads()} threads")
    for seed in args.market_seeds:
        run_market(args, seed)


if __name__ == "__main__":
    main()
