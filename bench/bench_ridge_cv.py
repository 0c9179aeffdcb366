"""Benchmark: how the ridge start's penalty is chosen — on the validation window (the default) or by blocked
cross-validation over train through validation, optionally with a separate penalty scale on the neighbour
means m_L (fourteenth sweep). Linear mode: the model's ridge start without the deep path, refitted through
validation as the defaults do. Scores: mean daily RankIC per horizon on the selection window of the tuning
markets (their test windows are never read).

Run: ./run shell, then python bench/bench_ridge_cv.py --preset realistic --n-stocks 1000
"""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime

import numpy as np
import torch
from bench_linear_probe import tuning_market_args
from bench_throughput import market_tables

from atft_dagster.evaluation.baselines import DailyRankIC
from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training import skip_init
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.linear_graph import NO_DEEP_PATH
from atft_dagster.training.train import config_folds, predict, refit_dates

SCALES = [1.0, 3.0, 10.0, 30.0, 1e4]


def penalty_diag(d: int, own: int, scale: float) -> torch.Tensor:
    """1 on the own inputs x_L, ``scale`` on the neighbour means m_L."""
    diag = torch.ones(d, dtype=torch.float64)
    diag[own:] = scale
    return diag


def date_batches(model, data, dates, batch_dates):
    """``skip_init.skip_batches`` with each batch's dates: (dates, u, raw labels, rows per date)."""
    chunks = (dates[i : i + batch_dates] for i in range(0, len(dates), batch_dates))
    for ds, (u, y, counts) in zip(
        chunks, skip_init.skip_batches(model, data, dates, batch_dates), strict=False
    ):
        yield ds, u, y, counts


@torch.no_grad()
def blocked_cv(
    model: ATFTGATFAN,
    data: PanelTensors,
    dates: list[int],
    cands: list[tuple[float, float]],
    folds: int,
    batch_dates: int,
) -> dict[str, dict[tuple[float, float], float]]:
    """Per horizon and (penalty, scale): mean daily RankIC over ``dates`` of K contiguous held-out blocks,
    each block scored by the ridge fitted on the other dates less h dates either side of the block."""
    cfg = model.cfg
    hs = cfg.horizons
    n = len(dates)
    block = [min(i * folds // n, folds - 1) for i in range(n)]
    lo = [dates[block.index(k)] for k in range(folds)]
    hi = [dates[n - 1 - block[::-1].index(k)] for k in range(folds)]
    fold_of = dict(zip(dates, block, strict=True))

    def excluded(t: int, h: int) -> list[int]:
        return [k for k in range(folds) if lo[k] - h <= t <= hi[k] + h]

    total = excl = None
    for ds, u, y, counts in date_batches(model, data, dates, batch_dates):
        yz = skip_init.zscore_by_date(y, counts, cfg.label_clip)
        if total is None:
            d = u.shape[1]
            total = [u.new_zeros(len(hs), d, d), u.new_zeros(len(hs), d), np.zeros(len(hs))]
            excl = [
                u.new_zeros(folds, len(hs), d, d),
                u.new_zeros(folds, len(hs), d),
                np.zeros((folds, len(hs))),
            ]
        for t, ut, yt in zip(ds, torch.split(u, counts), torch.split(yz, counts), strict=True):
            for j, h in enumerate(hs):
                ok = torch.isfinite(yt[:, j])
                uh = ut[ok]
                g, c, r = uh.T @ uh, uh.T @ yt[ok, j], int(ok.sum())
                total[0][j] += g
                total[1][j] += c
                total[2][j] += r
                for k in excluded(t, h):
                    excl[0][k, j] += g
                    excl[1][k, j] += c
                    excl[2][k, j] += r
    d = total[0].shape[-1]
    own = data.n_features
    diags = {s: penalty_diag(d, own, s) for s in {s for _, s in cands}}
    # weights[k][j]: (d, C)
    weights = [
        [
            torch.stack(
                [
                    torch.linalg.solve(
                        total[0][j]
                        - excl[0][k, j]
                        + max(total[2][j] - excl[2][k, j], 1) * p * torch.diag(diags[s]),
                        total[1][j] - excl[1][k, j],
                    )
                    for p, s in cands
                ],
                dim=1,
            )
            for j in range(len(hs))
        ]
        for k in range(folds)
    ]
    ics: list[list[list[torch.Tensor]]] = [[[] for _ in cands] for _ in hs]
    for ds, u, y, counts in date_batches(model, data, dates, batch_dates):
        for t, ut, yt in zip(ds, torch.split(u, counts), torch.split(y, counts), strict=True):
            k = fold_of[t]
            for j in range(len(hs)):
                pred = ut @ weights[k][j]
                for c in range(len(cands)):
                    ics[j][c].append(
                        daily_ic_device(pred[:, c], yt[:, j], [len(ut)], cfg.min_stocks_per_date, True)
                    )
    return {
        f"{h}d": {cand: float(torch.cat(ics[j][c]).nanmean()) for c, cand in enumerate(cands)}
        for j, h in enumerate(hs)
    }


@torch.no_grad()
def ridge_fit(model, data, dates, choice: dict[str, tuple[float, float]], batch_dates) -> torch.Tensor:
    """(H, d): per horizon the ridge over ``dates`` at its chosen (penalty, scale)."""
    cfg = model.cfg
    gram = cross = None
    rows = [0] * len(cfg.horizons)
    for _, u, y, counts in date_batches(model, data, dates, batch_dates):
        yz = skip_init.zscore_by_date(y, counts, cfg.label_clip)
        if gram is None:
            gram = u.new_zeros(len(cfg.horizons), u.shape[1], u.shape[1])
            cross = u.new_zeros(len(cfg.horizons), u.shape[1])
        for j in range(len(cfg.horizons)):
            ok = torch.isfinite(yz[:, j])
            gram[j] += u[ok].T @ u[ok]
            cross[j] += u[ok].T @ yz[ok, j]
            rows[j] += int(ok.sum())
    d = gram.shape[-1]
    out = []
    for j, h in enumerate(cfg.horizons):
        p, s = choice[f"{h}d"]
        a = gram[j] + rows[j] * p * torch.diag(penalty_diag(d, data.n_features, s))
        out.append(torch.linalg.solve(a, cross[j]))
    return torch.stack(out)


def selection_scores(model, data, cfg, split, src) -> dict[str, float]:
    frame = predict(model, data, split.selection, cfg.batch_dates)
    frame = frame.join(src.oracle(frame["date"].min(), frame["date"].max()), on=["date", "code"], how="left")
    dates = frame["date"].to_numpy()
    out = {}
    for h in cfg.horizons:
        score = DailyRankIC(dates, frame[f"label_{h}d"].to_numpy(), cfg.min_stocks_per_date)
        out[f"{h}d"] = score(frame[f"pred_{h}d"].to_numpy())
        out[f"oracle_{h}d"] = score(frame[f"oracle_{h}d"].to_numpy())
    out["mean"] = float(np.mean([out[f"{h}d"] for h in cfg.horizons]))
    return out


def linear_mode(feats, reg, graph, cfg: TrainingConfig):
    """(tensors, fold 0's split, the model without its deep path, the refit dates): the ridge start alone."""
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update=NO_DEEP_PATH))
    skip_init.zero_deep_head(model)
    return data, split, model, refit_dates(data, cfg, split)


def run_market(args, seed: int) -> list[dict]:
    src, panel, topix, reg, feats = market_tables(
        market_preset(args.preset, seed=seed, n_stocks=args.n_stocks)
    )
    cfg = TrainingConfig(**json.loads(args.overrides))
    over = json.loads(args.graph)
    if unknown := set(over) - set(GraphConfig.model_fields):
        raise SystemExit(f"--graph: not GraphConfig fields: {sorted(unknown)}")
    data, split, model, refit = linear_mode(
        feats, reg, build_stock_graph(panel, topix, GraphConfig(**over)), cfg
    )
    grid = cfg.skip_ridge_penalties
    rows = []

    def record(name, choice, t0, extra=None):
        skip_init.set_skip(model, ridge_fit(model, data, refit, choice, cfg.batch_dates))
        row = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "variant": name}
        row |= {
            "fit_s": round(time.perf_counter() - t0, 1),
            "choice": {k: list(v) for k, v in choice.items()},
        }
        row |= {k: round(v, 4) for k, v in selection_scores(model, data, cfg, split, src).items()}
        row |= extra or {}
        print(json.dumps(row), flush=True)
        rows.append(row)

    t0 = time.perf_counter()
    weights, _ = skip_init.ridge_solutions(model, data, split.train, grid, cfg.batch_dates)
    _, chosen, _ = skip_init.choose_per_horizon(model, weights, data, split.val, cfg.batch_dates)
    record("val", {k: (p, 1.0) for k, p in chosen.items()}, t0)
    if args.variants == ["val"]:
        return rows
    cands = [(p, s) for p in grid for s in SCALES]
    t0 = time.perf_counter()
    cv = blocked_cv(model, data, refit, cands, args.folds, cfg.batch_dates)
    cv_s = time.perf_counter() - t0
    for name, allowed in (("cv_l", [(p, 1.0) for p in grid]), ("cv_ls", cands)):
        choice = {k: max(allowed, key=lambda c, k=k: scores[c]) for k, scores in cv.items()}
        best = {k: round(cv[k][choice[k]], 4) for k in cv}
        record(name, choice, time.perf_counter() - cv_s, {"cv_rank_ic": best, "cv_s": round(cv_s, 1)})
    return rows


def main() -> None:
    ap = tuning_market_args()
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--overrides", default="{}", help="JSON of TrainingConfig fields every fit uses")
    ap.add_argument("--graph", default="{}", help="JSON of GraphConfig fields")
    ap.add_argument(
        "--variants", nargs="+", default=["val", "cv_l", "cv_ls"], choices=["val", "cv_l", "cv_ls"]
    )
    args = ap.parse_args()
    print_header()
    rows = [r for seed in args.market_seeds for r in run_market(args, seed)]
    selection_table(args, rows, "variant", "variant", ["val", "cv_l", "cv_ls"])


def print_header() -> None:
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()}, {torch.get_num_threads()} threads",
        flush=True,
    )


def selection_table(args, rows: list[dict], label: str, key: str, names: list) -> None:
    """The linear-mode selection table by market: one line per value of ``row[key]`` in ``names``."""
    seeds = args.market_seeds
    print(
        f"\n{args.preset}, {args.n_stocks} stocks, linear mode: selection window, market "
        + " / ".join(map(str, seeds))
    )
    print(f"\n| {label} | 1d | 5d | 10d | 20d | **mean** |")
    print("|---|---|---|---|---|---|")
    for name in names:
        rs = {r["market_seed"]: r for r in rows if r[key] == name}
        if not rs:
            continue
        cells = [" / ".join(f"{rs[s][f'{h}d']:.4f}" for s in seeds) for h in (1, 5, 10, 20)]
        mean = " / ".join(f"{rs[s]['mean']:.4f}" for s in seeds)
        shown = name if isinstance(name, str) else f"{name:g}"
        print(f"| {shown} | " + " | ".join(cells) + f" | **{mean}** |")


if __name__ == "__main__":
    main()
