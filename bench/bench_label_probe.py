"""Benchmark: the ridge start's label transform (29th sweep, a linear probe).

The skip's ridge start regresses per-date z-scored labels clipped at ``label_clip`` (3). Returns have fat tails
(Student-t, 4 degrees of freedom), so a more robust label might fit a better start, above all at 5-20 days
where the overlapping labels are noisiest. Variants of the label, per date and horizon:

- ``z3``: z-score clipped at 3 (the default), ``z2``: clipped at 2;
- ``rankgauss``: normal scores of the ranks, Phi^-1((rank + 0.5) / n);
- ``rank``: uniform ranks, centred and scaled to unit variance.

Per market: the model in linear mode (the default skip inputs and graph, no deep path), fold 0; per variant
and horizon the penalty is chosen from ``skip_ridge_penalties`` by validation RankIC, then the start is
scored on the selection window (never the test window).
Run: ./run shell, then python bench/bench_label_probe.py --preset realistic --n-stocks 1000 --market-seeds 11 12
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from bench_linear_probe import linear_start, tuning_market_args
from scipy.stats import norm

from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.skip_init import skip_batches

VARIANTS = ("z3", "z2", "rankgauss", "rank")


def transform(y: torch.Tensor, counts: list[int], kind: str) -> torch.Tensor:
    """(n, H) raw labels grouped by date -> the variant's per-date label; NaN stays NaN."""
    out = torch.full_like(y, torch.nan)
    start = 0
    for n_rows in counts:
        for j in range(y.shape[1]):
            v = y[start : start + n_rows, j]
            ok = torch.isfinite(v)
            n = int(ok.sum())
            if n < 2:
                continue
            vv = v[ok]
            if kind.startswith("z"):
                clip = float(kind[1:])
                z = ((vv - vv.mean()) / vv.std(unbiased=False).clamp_min(1e-12)).clamp(-clip, clip)
            else:
                u = (torch.argsort(torch.argsort(vv)).double() + 0.5) / n
                z = torch.from_numpy(norm.ppf(u.numpy())) if kind == "rankgauss" else (u - 0.5) * 12**0.5
            out[start : start + n_rows, j][ok] = z.to(y.dtype)
        start += n_rows
    return out


def probe(preset: str, seed: int, n_stocks: int) -> dict:
    cfg, data, split, model = linear_start(preset, seed, n_stocks)

    def rows(dates: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        parts = list(skip_batches(model, data, dates, cfg.batch_dates))
        return (
            torch.cat([p[0] for p in parts]),
            torch.cat([p[1] for p in parts]),
            [c for p in parts for c in p[2]],
        )

    (u, y, counts), val, sel = rows(split.train), rows(split.val), rows(split.selection)
    eye = torch.eye(u.shape[1], dtype=torch.float64)

    def score(w: torch.Tensor, window: tuple, j: int) -> float:
        ic = daily_ic_device(window[0] @ w, window[1][:, j], window[2], cfg.min_stocks_per_date, True)
        return float(ic.nanmean())

    row: dict = {"preset": preset, "market_seed": seed, "n_stocks": n_stocks}
    for kind in VARIANTS:
        yt = transform(y, counts, kind)
        for j, h in enumerate(cfg.horizons):
            ok = torch.isfinite(yt[:, j])
            uh = u[ok]
            gram, cross, n = uh.T @ uh, uh.T @ yt[ok, j], int(ok.sum())
            fits = {p: torch.linalg.solve(gram + n * p * eye, cross) for p in cfg.skip_ridge_penalties}
            val_ic = {p: score(w, val, j) for p, w in fits.items()}
            best = max(val_ic, key=val_ic.get)
            row[f"{kind}_{h}d"] = round(score(fits[best], sel, j), 5)
            row[f"{kind}_{h}d_penalty"] = best
    return row


def main() -> None:
    args = tuning_market_args("realistic", (11, 12, 13, 14), 1000).parse_args()
    rows = []
    for seed in args.market_seeds:
        t0 = time.time()
        rows.append(probe(args.preset, seed, args.n_stocks))
        rows[-1]["seconds"] = round(time.time() - t0, 1)
        print(json.dumps(rows[-1]), flush=True)
    horizons = sorted({int(k.split("_")[1][:-1]) for k in rows[0] if k.startswith("z3_") and "pen" not in k})
    print("| market | " + " | ".join(f"{v} {'/'.join(map(str, horizons))} d" for v in VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for r in rows:
        cells = [" / ".join(f"{r[f'{v}_{h}d']:.4f}" for h in horizons) for v in VARIANTS]
        print(f"| {r['preset']} {r['market_seed']} | " + " | ".join(cells) + " |")
    for v in VARIANTS:
        change = [np.mean([r[f"{v}_{h}d"] - r[f"z3_{h}d"] for h in horizons]) for r in rows]
        five = np.mean([r[f"{v}_5d"] - r["z3_5d"] for r in rows])
        print(
            f"{v}: four-horizon mean change {np.mean(change):+.5f}, worst market {min(change):+.5f}, "
            f"5-day change {five:+.5f}"
        )


if __name__ == "__main__":
    main()
