"""Benchmark (prototype, twenty-fourth sweep): time the trained deep path next to the timed skip.

Skip timing (training/skip_timing.py) re-weights the input skip's group sub-scores by their recent payoff;
the deep path's part of the prediction, r = P_off - (U beta_h + b_h), keeps its trained weight, which
learned the effects' average strengths. This script stacks the two parts of the model's own prediction per
date t and horizon h: s = P_own - r (the skip as the default times it) and r, with multipliers

    m_t = (G_t + kappa D_t)^{-1} (c_t + kappa D_t 1),  G_t, c_t: EWMA (half-life tau) of X_u^T X_u / n_u and
    X_u^T y~_u / n_u over the dates u whose h-day label has ended (u + h <= t), X_u = [s_u, r_u] demeaned,

shrunk towards (1, 1) (D: diagonal of G), and a point-in-time gate of the same kind as the skip's: the
stack applies on t only if the Newey-West t (lag h - 1) of the ended dates' gains corr(X m, y) - corr(X 1, y)
exceeds min_t after a burn-in. tau, kappa, burn-in and min_t are the skip timing's defaults (no new knob).
The pass starts at the validation window: the deep path's weights never saw those labels.

Rows: mean daily RankIC per horizon on the selection window for the model as is (``own``), the stack
ungated and gated, and the share of selection dates the gate stacked. The test window is never read.

Run: ./run shell, then python bench/bench_deep_timing.py --preset realistic --n-stocks 1000
--market-seeds 11 12 13 14
"""

from __future__ import annotations

import math
import time

import numpy as np
import polars as pl
import torch
from bench_skip_timing import add_scores, run_sweep, trained_default

from atft_dagster.evaluation.metrics import newey_west_t
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_timing import _first, timing_statistics, trained_skip_weights
from atft_dagster.training.train import predict

# a part whose variance is below this share of the larger one's is rounding, not signal
RELATIVE_FLOOR = 1e-8


def skip_scores(model, data: PanelTensors, dates: list[int], horizons: list[int]) -> pl.DataFrame:
    """The untimed skip's part of the prediction, U beta_h + b_h, per (date, code)."""
    first = _first(model)
    beta = trained_skip_weights(model).detach().double()
    if hasattr(model, "members"):
        bias = torch.stack([model.members[j].skip.lin.bias[k] for k, j in enumerate(model.source)])
    else:
        bias = first.skip.lin.bias
    frames = []
    with torch.no_grad():
        for t in dates:
            b = data.batch([t])
            u = first.skip_inputs(b.x[:, -1], b.edge_index, b.edge_attr).double()
            k = (u @ beta.T + bias.detach().double()).cpu().numpy()
            cols = {"date": pl.Series([b.dates[0]] * len(b.codes[0]), dtype=pl.Date), "code": b.codes[0]}
            cols |= {f"skip_{h}d": k[:, j] for j, h in enumerate(horizons)}
            frames.append(pl.DataFrame(cols))
    return pl.concat(frames)


def zscore(y: np.ndarray, clip: float) -> np.ndarray:
    ok = np.isfinite(y)
    out = np.full_like(y, np.nan)
    if ok.sum() >= 2:
        v = y[ok]
        out[ok] = np.clip((v - v.mean()) / max(v.std(), 1e-12), -clip, clip)
    return out


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / den if den > 0 else 0.0


def stack(
    per_date: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    h: int,
    half_life: float,
    kappa: float,
    burn_in: int,
    min_t: float | None,
    clip: float,
) -> dict[int, tuple[np.ndarray, bool]]:
    """per_date: (panel date index t, s_t, r_t, raw labels y_t) in date order -> per t: (multipliers, gated
    on). Only labels with u + h <= t are read at t."""
    a = 0.5 ** (1.0 / half_life)
    gram, cross, rows = np.zeros((2, 2)), np.zeros(2), 0.0
    prev = None
    ended = 0
    gains: list[float] = []
    waiting: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (t, X, y~, m) awaiting labels
    pending = list(per_date)
    j = 0
    out = {}
    for t, s, r, y in per_date:
        if prev is not None:
            f = a ** (t - prev)
            gram, cross, rows = gram * f, cross * f, rows * f
        prev = t
        while j < len(pending) and pending[j][0] + h <= t:  # labels that have ended by t enter once
            u, su, ru, yu = pending[j]
            j += 1
            yz = zscore(yu, clip)
            ok = np.isfinite(yz)
            if ok.sum() < 2:
                continue
            x = np.stack([su[ok] - su[ok].mean(), ru[ok] - ru[ok].mean()], axis=1)
            w = a ** (t - u)
            gram += w * x.T @ x
            cross += w * x.T @ yz[ok]
            rows += w * ok.sum()
            ended += 1
        while waiting and waiting[0][0] + h <= t:  # the gate's gains of ended dates
            _, x, yz, m = waiting.pop(0)
            gains.append(corr(x @ m, yz) - corr(x.sum(1), yz))
        m = np.ones(2)
        if rows > 0:
            g, c = gram / rows, cross / rows
            # a part at float32 rounding (the deep path of a horizon that kept the ridge start) keeps 1
            live = np.diag(g) > RELATIVE_FLOOR * np.diag(g).max()
            if live.any():
                d = np.diag(np.diag(g)[live])
                m[live] = np.linalg.solve(g[np.ix_(live, live)] + kappa * d, c[live] + kappa * d.sum(1))
        tstat = newey_west_t(np.asarray(gains), h - 1) if ended >= burn_in and len(gains) >= 2 else math.nan
        out[t] = (m, min_t is None or bool(tstat > min_t))
        yz = zscore(y, clip)
        ok = np.isfinite(yz)
        if ok.sum() >= 2:
            x = np.stack([s[ok] - s[ok].mean(), r[ok] - r[ok].mean()], axis=1)
            waiting.append((t, x, yz[ok], m))
    return out


def run_market(args, seed: int) -> list[dict]:
    src, data, cfg, split, model, t0 = trained_default(args, seed)
    fit_s = time.perf_counter() - t0
    usable = set(data.usable_dates(cfg.min_stocks_per_date))
    dates = [t for t in range(split.val[0], split.selection[-1] + 1) if t in usable]
    own = model.cfg
    frame_own = predict(model, data, dates, cfg.batch_dates, timing=timing_statistics(model, data, dates))
    model.cfg = own.model_copy(update={"skip_timing_half_life": 0.0})
    frame_off = predict(model, data, dates, cfg.batch_dates)
    model.cfg = own
    keys = ["date", "code"]
    frame = frame_own.join(
        frame_off.select(keys + [pl.col(f"pred_{h}d").alias(f"off_{h}d") for h in cfg.horizons]), on=keys
    ).join(skip_scores(model, data, dates, cfg.horizons), on=keys)
    index = {d: i for i, d in enumerate(data.dates)}
    frame = frame.with_columns(pl.col("date").replace_strict(index, return_dtype=pl.Int64).alias("t"))
    frame = frame.sort(["t", "code"])
    rows = []
    for gated in (False, True):
        cols = {}
        share = {}
        for h in cfg.horizons:
            r = frame[f"off_{h}d"].to_numpy() - frame[f"skip_{h}d"].to_numpy()
            s = frame[f"pred_{h}d"].to_numpy() - r
            y = frame[f"label_{h}d"].to_numpy()
            tt = frame["t"].to_numpy()
            parts = np.split(np.arange(len(frame)), np.flatnonzero(np.diff(tt)) + 1)
            per_date = [(int(tt[p[0]]), s[p], r[p], y[p]) for p in parts]
            ms = stack(
                per_date,
                h,
                own.skip_timing_half_life,
                own.skip_timing_shrink,
                own.skip_timing_gate_burn_in,
                own.skip_timing_gate_min_t if gated else None,
                own.label_clip,
            )
            new = frame[f"pred_{h}d"].to_numpy().copy()
            for (t, st, rt, _), p in zip(per_date, parts, strict=True):
                m, on = ms[t]
                if on:
                    new[p] = m[0] * st + m[1] * rt
            cols[f"stack_{h}d"] = new
            sel = set(split.selection)
            share[h] = float(np.mean([ms[t][1] for t in ms if t in sel]))
            last = max(sel)
            share[f"m_{h}d_last"] = [round(float(v), 3) for v in ms[last][0]]
        sel_frame = frame.with_columns(**{k: pl.Series(v) for k, v in cols.items()}).filter(
            pl.col("t").is_in(split.selection)
        )
        sel_frame = sel_frame.join(
            src.oracle(sel_frame["date"].min(), sel_frame["date"].max()), on=keys, how="left"
        )
        d = sel_frame["date"].to_numpy()
        base = {"preset": args.preset, "market_seed": seed, "n_stocks": args.n_stocks, "fit_s": round(fit_s)}
        if not gated:
            rows.append(add_scores({**base, "variant": "own"}, sel_frame, d, "selection", cfg))
        name = "stack_gated" if gated else "stack_ungated"
        row = {**base, "variant": name, "stacked_share": share}
        rows.append(add_scores(row, sel_frame, d, "selection", cfg, prefix="stack"))
    return rows


def main() -> None:
    run_sweep(run_market, ("own", "stack_ungated", "stack_gated"))


if __name__ == "__main__":
    main()
