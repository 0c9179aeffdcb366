"""Probe (thirty-seventh sweep): the ridge start's 5-20-day weights pooled across horizons.

A 336-day train window holds about 67 / 34 / 17 independent 5 / 10 / 20-day labels, and the three truths
share their effects (a persistent signal adds up over the horizon). Variants, 1 day untouched:

- ``pooled``: one ridge on the pooled label ``ybar`` = mean of the 5/10/20-day z-labels present on a row,
  penalty from ``skip_ridge_penalties`` by the mean over 5/10/20 days of the validation RankIC against each
  horizon's own label; the same weights predict 5, 10 and 20 days.
- ``toward_pooled``: per horizon, ridge shrunk towards the pooled weights instead of zero,
  ``b_h = b_pool + (U'U + n k I)^-1 U'(y_h - U b_pool)``, ``k`` from ``skip_ridge_penalties`` and ``inf``
  (``b_pool`` itself) by that horizon's validation RankIC.

Both against ``default`` (``bench_beta_residual_probe.ridge_start``: the ridge start without the deep path,
train window, penalty per horizon on validation). Scored on the selection window of fold 0 by the agreement
with the oracle; the realised RankIC and the oracle's own 5- against 20-day agreement are printed as
diagnostics. The rule the sweep was judged by is quoted in docs/benchmarks.md.

Run: ./run shell, then python bench/bench_horizon_pool_probe.py --preset realistic --n-stocks 1000 --market-seeds 11 12 13 14 15 16 17 18
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from bench_beta_residual_probe import (
    by_variant,
    linear_setup,
    mean_change,
    ridge_start,
    signed,
    zscored_rows,
)
from bench_linear_probe import tuning_market_args

from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.skip_init import set_skip
from atft_dagster.training.train import predict

POOLED = (5, 10, 20)


def val_ic(pred: torch.Tensor, label: torch.Tensor, counts: list[int], min_stocks: int) -> float:
    return float(daily_ic_device(pred, label, counts, min_stocks, True).nanmean())


def solve(u: torch.Tensor, y: torch.Tensor, penalty: float) -> torch.Tensor:
    """Ridge with per-row ``penalty`` on the rows where ``y`` is finite."""
    ok = torch.isfinite(y)
    eye = torch.eye(u.shape[1], dtype=u.dtype)
    return torch.linalg.solve(u[ok].T @ u[ok] + int(ok.sum()) * penalty * eye, u[ok].T @ y[ok])


def pooled_weights(u, yz, uv, yvz, cv, cfg, cols: list[int]) -> tuple[torch.Tensor, float]:
    """(the ridge on the mean of the ``cols`` z-labels, its penalty by the mean validation RankIC over them)."""
    ybar = yz[:, cols].nanmean(dim=1)
    fits = {p: solve(u, ybar, p) for p in cfg.skip_ridge_penalties}
    score = {
        p: float(np.mean([val_ic(uv @ w, yvz[:, j], cv, cfg.min_stocks_per_date) for j in cols]))
        for p, w in fits.items()
    }
    best = max(score, key=score.get)
    return fits[best], best


def toward(u, y, uv, yv, cv, cfg, prior: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(ridge shrunk towards ``prior``, its penalty from the grid and inf by the validation RankIC)."""
    r = y - u @ prior
    fits = {math.inf: prior} | {p: prior + solve(u, r, p) for p in cfg.skip_ridge_penalties}
    score = {p: val_ic(uv @ w, yv, cv, cfg.min_stocks_per_date) for p, w in fits.items()}
    best = max(score, key=score.get)
    return fits[best], best


def probe(preset: str, seed: int, n_stocks: int) -> list[dict]:
    cfg, src, feats, data, split, model = linear_setup(preset, seed, n_stocks)

    (u, yz, _), (uv, yvz, cv) = (zscored_rows(model, data, d, cfg) for d in (split.train, split.val))
    cols = [cfg.horizons.index(h) for h in POOLED]
    default, chosen = ridge_start(u, yz, uv, yvz, cv, cfg)
    b_pool, k_pool = pooled_weights(u, yz, uv, yvz, cv, cfg, cols)
    weights = {"default": (default, chosen), "pooled": (default.clone(), {"pool": k_pool})}
    weights["toward_pooled"] = (default.clone(), {"pool": k_pool})
    for j in cols:
        weights["pooled"][0][j] = b_pool
        w, k = toward(u, yz[:, j], uv, yvz[:, j], cv, cfg, b_pool)
        weights["toward_pooled"][0][j] = w
        weights["toward_pooled"][1][f"{cfg.horizons[j]}d"] = "pool" if math.isinf(k) else k
    sel_days = [data.dates[t] for t in split.selection]
    truth = src.oracle(min(sel_days), max(sel_days))
    out = []
    for name, (weight, picks) in weights.items():
        set_skip(model, weight)
        frame = predict(model, data, split.selection, cfg.batch_dates).join(truth, on=["date", "code"])
        row = {"preset": preset, "market_seed": seed, "variant": name, "penalty": picks}
        for h in cfg.horizons:
            col = {"p": f"pred_{h}d"}
            row[f"agree_{h}d"] = oracle_agreement(
                frame, col, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
            )["p"]
            days = frame.drop_nulls([f"label_{h}d", f"pred_{h}d"]).sort("date").partition_by("date")
            row[f"rank_ic_{h}d"] = float(
                np.nanmean(
                    daily_ic(
                        [d[f"pred_{h}d"].to_numpy() for d in days],
                        [d[f"label_{h}d"].to_numpy() for d in days],
                        cfg.min_stocks_per_date,
                        rank=True,
                    )
                )
            )
        if name == "default":  # how alike the truths are: the 5- and 10-day oracles against the 20-day one
            for h in (5, 10):
                row[f"oracle_{h}d_vs_20d"] = oracle_agreement(
                    frame, {"o": f"oracle_{h}d"}, "label_20d", "oracle_20d", cfg.min_stocks_per_date
                )["o"]
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        out.append(row)
    return out


def main() -> None:
    args = tuning_market_args("realistic", (11, 12, 13, 14, 15, 16, 17, 18), 1000).parse_args()
    rows = [r for seed in args.market_seeds for r in probe(args.preset, seed, args.n_stocks)]
    seeds, variants = args.market_seeds, by_variant(rows)
    print(f"\n| variant | L = 5-20 d mean agreement, market {' / '.join(map(str, seeds))} (mean) |")
    print("|---|---|")
    for v, rs in variants.items():
        a = [np.mean([rs[s][f"agree_{h}d"] for h in POOLED]) for s in seeds]
        print(f"| {v} | " + " / ".join(f"{x:.3f}" for x in a) + f" ({np.mean(a):.3f}) |")
    base = variants["default"]
    print("\n| change from default | L per market (mean) | realised 5-20 d RankIC (mean) |\n|---|---|---|")
    for v, rs in list(variants.items())[1:]:
        ric = np.mean(mean_change(rs, base, seeds, POOLED, "rank_ic"))
        print(f"| {v} | {signed(mean_change(rs, base, seeds, POOLED))} | {ric:+.4f} |")


if __name__ == "__main__":
    main()
