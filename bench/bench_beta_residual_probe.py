"""Probe: the ridge start fitted on labels with each date's beta exposure taken out, on the tuning markets.

On ``realistic`` the 5-20-day truth leans on the beta premium (beta alone agrees 0.33-0.62 with it on the
selection windows, ``bench_factor_agreement.py``), while the realised labels carry beta x the market's move,
whose sign over the train window decides what a fit learns about beta. Variant ``resid``: per date and
horizon, the z-scored label minus its cross-sectional projection on the ``beta_60d`` input, so the fit learns
the other effects without that noise (and without the premium). Both variants: ridge start without the deep
path, penalty per horizon on validation (each against its own labels), fitted on the train window.
Scored on the selection window: agreement with the oracle (``agree``) and with the oracle less its own
per-date projection on ``beta_60d`` (``agree_resid``: the part of the truth that is not beta). Exploratory:
it decides nothing; a lever built on it must pass a pre-registered sweep.

Run: ./run shell, then python bench/bench_beta_residual_probe.py --preset realistic --n-stocks 1000 --market-seeds 11 12 13 14
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import torch
from bench_linear_probe import tuning_market_args
from bench_throughput import inputs

from atft_dagster.evaluation.report import oracle_agreement
from atft_dagster.market import market_preset
from atft_dagster.model import TrainingConfig
from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ic import daily_ic_device
from atft_dagster.training.linear_graph import NO_DEEP_PATH
from atft_dagster.training.skip_init import set_skip, skip_batches, zero_deep_head, zscore_by_date
from atft_dagster.training.train import config_folds, predict

BETA = "beta_60d"


def residual_by_date(
    yz: torch.Tensor, b: torch.Tensor, counts: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(``yz`` less, per date and column, its least-squares projection on the date's centred ``b``; the
    projections' slopes, (dates, columns), NaN where a date has too few rows)."""
    out, start = yz.clone(), 0
    slopes = torch.full((len(counts), yz.shape[1]), torch.nan, dtype=yz.dtype)
    for d, n in enumerate(counts):
        bb = b[start : start + n]
        for j in range(yz.shape[1]):
            y = yz[start : start + n, j]
            ok = torch.isfinite(y) & torch.isfinite(bb)
            if ok.sum() < 3:
                continue
            x = bb[ok] - bb[ok].mean()
            coef = (x @ (y[ok] - y[ok].mean())) / (x @ x).clamp_min(1e-12)
            out[start : start + n, j][ok] = y[ok] - coef * x
            slopes[d, j] = coef
        start += n
    return out, slopes


def probe(preset: str, seed: int, n_stocks: int) -> list[dict]:
    cfg = TrainingConfig()
    src, reg, feats, graph = inputs(market_preset(preset, seed=seed, n_stocks=n_stocks))
    data = PanelTensors.for_model(feats, reg, graph, cfg)
    split = config_folds(data, cfg)[0]
    model = ATFTGATFAN(data.n_features, cfg.model_copy(update=NO_DEEP_PATH))
    zero_deep_head(model)
    j_beta = data.names.index(BETA)

    def rows(dates: list[int]):
        parts = list(skip_batches(model, data, dates, cfg.batch_dates))
        u = torch.cat([p[0] for p in parts])
        counts = [c for p in parts for c in p[2]]
        yz = zscore_by_date(torch.cat([p[1] for p in parts]), counts, cfg.label_clip)
        resid, slopes = residual_by_date(yz, u[:, j_beta], counts)
        return u, {"default": yz, "resid": resid}, counts, slopes

    (u, ys, _, slopes), (uv, yv, cv, _) = rows(split.train), rows(split.val)
    # what the train window's labels say about beta: the mean per-date slope on the beta input (the truth's
    # is positive: the preset prices beta), and the t of the window's mean daily market return
    train_days = [data.dates[t] for t in split.train]
    mkt = feats.filter(pl.col("date").is_in(train_days)).group_by("date").agg(pl.col("mkt_ret_1d").first())
    m = mkt["mkt_ret_1d"].drop_nulls().to_numpy()
    window = {"train_market_t": float(m.mean() / m.std(ddof=1) * np.sqrt(len(m)))}
    for j, h in enumerate(cfg.horizons):
        window[f"train_beta_slope_{h}d"] = float(np.nanmean(slopes[:, j].numpy()))
    print(json.dumps({"market_seed": seed} | {k: round(v, 4) for k, v in window.items()}), flush=True)
    eye = torch.eye(u.shape[1], dtype=torch.float64)
    sel_dates = [data.dates[t] for t in split.selection]
    truth = src.oracle(min(sel_dates), max(sel_dates)).join(
        feats.select("date", "code", BETA), on=["date", "code"], how="left"
    )
    for h in cfg.horizons:  # the oracle less its per-date projection on beta
        o, b = pl.col(f"oracle_{h}d"), pl.col(BETA)
        bc, oc = b - b.mean().over("date"), o - o.mean().over("date")
        slope = (bc * oc).sum().over("date") / (bc * bc).sum().over("date")
        truth = truth.with_columns((oc - slope * bc).alias(f"resid_oracle_{h}d"))
    out = []
    for variant, y in ys.items():
        weight = torch.zeros(len(cfg.horizons), u.shape[1], dtype=torch.float64)
        chosen = {}
        for j, h in enumerate(cfg.horizons):
            ok = torch.isfinite(y[:, j])
            gram, cross, n = u[ok].T @ u[ok], u[ok].T @ y[ok, j], int(ok.sum())
            fits = {p: torch.linalg.solve(gram + n * p * eye, cross) for p in cfg.skip_ridge_penalties}
            val = {
                p: float(
                    daily_ic_device(uv @ w, yv[variant][:, j], cv, cfg.min_stocks_per_date, True).nanmean()
                )
                for p, w in fits.items()
            }
            chosen[f"{h}d"] = max(val, key=val.get)
            weight[j] = fits[chosen[f"{h}d"]]
        set_skip(model, weight)
        frame = predict(model, data, split.selection, cfg.batch_dates).join(truth, on=["date", "code"])
        row = {"preset": preset, "market_seed": seed, "variant": variant, "penalty": chosen} | window
        for h in cfg.horizons:
            col = {"p": f"pred_{h}d"}
            row[f"agree_{h}d"] = oracle_agreement(
                frame, col, f"label_{h}d", f"oracle_{h}d", cfg.min_stocks_per_date
            )["p"]
            row[f"agree_resid_{h}d"] = oracle_agreement(
                frame, col, f"label_{h}d", f"resid_oracle_{h}d", cfg.min_stocks_per_date
            )["p"]
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        out.append(row)
    return out


def main() -> None:
    args = tuning_market_args("realistic", (11, 12, 13, 14), 1000).parse_args()
    rows = [r for seed in args.market_seeds for r in probe(args.preset, seed, args.n_stocks)]
    seeds = args.market_seeds
    print(
        "\n| variant | agreement 5 / 10 / 20 d (mean), market "
        + " / ".join(map(str, seeds))
        + " | with the non-beta truth |"
    )
    print("|---|---|---|")
    for v in ("default", "resid"):
        rs = {r["market_seed"]: r for r in rows if r["variant"] == v}
        a = [np.mean([rs[s][f"agree_{h}d"] for h in (5, 10, 20)]) for s in seeds]
        b = [np.mean([rs[s][f"agree_resid_{h}d"] for h in (5, 10, 20)]) for s in seeds]
        print(
            f"| {v} | " + " / ".join(f"{x:.3f}" for x in a) + " | " + " / ".join(f"{x:.3f}" for x in b) + " |"
        )


if __name__ == "__main__":
    main()
