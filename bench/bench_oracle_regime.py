"""Benchmark: the horizon oracle with the regime's path in expectation (2026-12-07).

Until then the h-day oracle (h > 1) took every later day's momentum strength at its calm/normal sign. On
`realistic` momentum reverses in the stress regime (``momentum_stress_multiplier`` -1), so the strength
expected at close t+k-1 is ``1 + (multiplier - 1) P^(k-1)[regime_t, stress]`` of the regime chain. This script
compares the two oracles on fresh simulated markets (no model, no features, nothing fitted or chosen): the
old one is rebuilt from the market's own arrays with that expectation set to 1 (and the rebuild with the
expectation reproduces the market's oracle exactly), then both are scored against the realised sum of the
next h daily returns: pooled mean squared error, mean daily RankIC (listed stocks), each split by the regime
at t, the paired daily RankIC difference with its t over markets (markets are independent), and the
calibration slope (pooled regression of the realised sum on the oracle, both demeaned per date; 1 for a
conditional expectation, 1 day included as the exact reference; dates from day 60, once the state settled).
Run: python bench/bench_oracle_regime.py [--market-seeds 3001 ... 3020] [--n-stocks 1000] [--n-days 1250]
"""

from __future__ import annotations

import argparse

import numpy as np

from atft_dagster.evaluation.metrics import daily_ic
from atft_dagster.market import market_preset, simulate
from atft_dagster.market.calibration import WARM_UP_DAYS
from atft_dagster.market.simulator import rebuild_horizon_oracle

REGIMES = ("calm", "normal", "stress")


def both_oracles(market) -> tuple[np.ndarray, np.ndarray]:
    """(old, new) horizon oracles (T, N, H); the rebuilt new one must equal ``market.oracle``."""
    old, new = rebuild_horizon_oracle(market, regime_aware=False), rebuild_horizon_oracle(market)
    np.testing.assert_array_equal(new, market.oracle)
    np.testing.assert_array_equal(old[:, :, 0], market.oracle[:, :, 0])
    return old, new


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=list(range(3001, 3021)))
    ap.add_argument("--n-stocks", type=int, default=1000)
    ap.add_argument("--n-days", type=int, default=1250)
    args = ap.parse_args()
    horizons = market_preset(args.preset).horizons
    long_h = [(j, h) for j, h in enumerate(horizons) if h > 1]
    # per (h, regime or "all"): squared-error sums; per-market RankIC means
    sse = {(h, r, k): 0.0 for _, h in long_h for r in (*REGIMES, "all") for k in ("old", "new")}
    ric = {(h, r, k): [] for _, h in long_h for r in (*REGIMES, "all") for k in ("old", "new")}
    slope = {(h, k): [0.0, 0.0] for h in horizons for k in ("old", "new")}  # sums of o*y and o*o
    print(
        f"**{args.preset}**, markets {args.market_seeds[0]}-{args.market_seeds[-1]}, {args.n_stocks} stocks, "
        f"{args.n_days} days\n"
    )
    print("| market | stress days | h | RankIC old | RankIC new | MSE new / old |")
    print("|---|---|---|---|---|---|")
    for seed in args.market_seeds:
        m = simulate(market_preset(args.preset, seed=seed, n_stocks=args.n_stocks, n_days=args.n_days))
        old, new = both_oracles(m)
        cs = np.vstack([np.zeros((1, m.returns.shape[1])), np.cumsum(m.returns, axis=0)])
        for j, h in enumerate(horizons):
            t = np.arange(WARM_UP_DAYS, m.n_days - h)  # the slope after the oracle's state has settled
            listed = m.listed[t]
            y = demean(cs[t + h + 1] - cs[t + 1], listed)
            for k, o in (("old", old[t, :, j]), ("new", new[t, :, j])):
                o = demean(o, listed)
                slope[(h, k)][0] += float((o * y).sum())
                slope[(h, k)][1] += float((o * o).sum())
        for j, h in long_h:
            t = np.arange(m.n_days - h)
            realised = cs[t + h + 1] - cs[t + 1]  # returns of days t+1 .. t+h
            mask = m.listed[t]
            pred = {"old": old[t, :, j], "new": new[t, :, j]}
            daily = {
                k: daily_ic(
                    [p[i][mask[i]] for i in range(len(t))],
                    [realised[i][mask[i]] for i in range(len(t))],
                    20,
                    rank=True,
                )
                for k, p in pred.items()
            }
            err = {k: np.where(mask, (p - realised) ** 2, 0.0).sum(axis=1) for k, p in pred.items()}
            for r_name, sel in (
                *((r, m.regime[t] == i) for i, r in enumerate(REGIMES)),
                ("all", np.ones(len(t), bool)),
            ):
                for k in ("old", "new"):
                    sse[(h, r_name, k)] += float(err[k][sel].sum())
                    if sel.any():
                        ric[(h, r_name, k)].append(float(np.nanmean(daily[k][sel])))
            print(
                f"| {seed} | {int((m.regime[t] == 2).sum())} | {h} | {np.nanmean(daily['old']):.4f} "
                f"| {np.nanmean(daily['new']):.4f} | {err['new'].sum() / err['old'].sum():.5f} |",
                flush=True,
            )
    print(
        "\nPooled over the markets (RankIC: mean ± s.d. over markets of each market's mean daily RankIC; "
        "paired t over markets; MSE pooled over every stock-day):\n"
    )
    print("| h | regime at t | RankIC old | RankIC new | new − old (t over markets) | MSE new / old |")
    print("|---|---|---|---|---|---|")
    for _, h in long_h:
        for r in ("all", *REGIMES):
            o, n = np.array(ric[(h, r, "old")]), np.array(ric[(h, r, "new")])
            d = n - o
            sd = d.std(ddof=1) if len(d) > 1 else 0.0
            t_d = f"{d.mean() / (sd / np.sqrt(len(d))):.1f}" if sd > 1e-9 else "–"
            print(
                f"| {h} | {r} | {o.mean():.4f} ± {o.std(ddof=1):.4f} | {n.mean():.4f} ± {n.std(ddof=1):.4f} "
                f"| {d.mean():+.4f} ({t_d}) | {sse[(h, r, 'new')] / sse[(h, r, 'old')]:.5f} |"
            )

    print("\nCalibration slope of the realised h-day return sum on the oracle (pooled, demeaned per date):\n")
    print("| h | old | new |\n|---|---|---|")
    for h in horizons:
        print(
            f"| {h} | "
            + " | ".join(f"{slope[(h, k)][0] / slope[(h, k)][1]:.3f}" for k in ("old", "new"))
            + " |"
        )


def demean(x: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Per-date (row) demeaned over the listed stocks; 0 elsewhere."""
    mean = (x * listed).sum(axis=1, keepdims=True) / np.maximum(listed.sum(axis=1, keepdims=True), 1)
    return np.where(listed, x - mean, 0.0)


if __name__ == "__main__":
    main()
