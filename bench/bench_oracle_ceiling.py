"""Benchmark: how much of the 1-day oracle a model with *fixed* effect strengths could reach at most.

The synthetic market's 1-day oracle is the sum of its effects' parts (reversal, momentum, volume shock,
peer lead-lag, beta drift), each scaled by a strength that may drift over time (``strength_drift_vol``)
and switch in the stress regime. A model fitted once and scored over a later window can learn the
strengths' average, not today's value. This scores, over the whole history from day 60 on, the mean daily
RankIC against the next day's return of the oracle and of the same oracle with every strength drift
removed (k_t = 1; the regime's multipliers kept, then removed too). No model is fitted; no window of any
split is involved.

``--timed-half-lives``: the ceiling of factor timing with the exact exposures. On date t each drift-free
part is weighted by its trailing payoff, the EWMA (half-life in days) of the daily cross-sectional slopes of
the next day's return rank on the four z-scored parts, over the days whose return is known at t.

Run: ./run shell, then python bench/bench_oracle_ceiling.py [--preset realistic] [--n-stocks 1000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import rankdata, spearmanr

from atft_dagster.market import market_preset
from atft_dagster.market.simulator import STRESS_REGIME, simulate

WARM_UP = 60  # days before the momentum window and the volume baseline are filled


def oracles(preset: str, seed: int, n_stocks: int) -> tuple[dict[str, np.ndarray], object]:
    """(the 1-day oracle and its fixed-strength versions, (T, N) each; the market)."""
    cfg = market_preset(preset, seed=seed, n_stocks=n_stocks)
    m = simulate(cfg)
    parts, k = m.effect_parts, 1.0 + m.strength_drift  # k: (T, 4) reversal, momentum, volume, peers
    stress = m.regime == STRESS_REGIME
    mom_regime = np.where(stress, cfg.dynamics.momentum_stress_multiplier, 1.0)
    rev_regime = np.where(stress, cfg.effects.reversal_stress_multiplier, 1.0)

    def per_day(x: np.ndarray) -> np.ndarray:  # (T,) -> (T, 1), never a zero divisor
        return np.where(np.abs(x) > 1e-12, x, 1e-12)[:, None]

    drift_free = {
        "reversal": parts["reversal"] / per_day(k[:, 0]),
        "momentum": parts["momentum"] / per_day(k[:, 1]),
        "volume_shock": parts["volume_shock"] / per_day(k[:, 2]),
        "peer_lead_lag": parts["peer_lead_lag"] / per_day(k[:, 3]),
    }
    fixed = sum(drift_free.values()) + parts["beta_drift"]
    constant = (
        drift_free["reversal"] / per_day(rev_regime)
        + drift_free["momentum"] / per_day(mom_regime)
        + drift_free["volume_shock"]
        + drift_free["peer_lead_lag"]
        + parts["beta_drift"]
    )
    return {
        "oracle": m.oracle[:, :, 0],
        "fixed strengths": fixed,
        "fixed strengths and regimes": constant,
        **{f"part {k}": v for k, v in drift_free.items()},
    }, m


def _z(x: np.ndarray) -> np.ndarray:
    s = x.std()
    return (x - x.mean()) / s if s > 0 else x - x.mean()


def timed(signals: dict[str, np.ndarray], m, half_lives: list[float]) -> dict[str, np.ndarray]:
    """Per half-life, the drift-free parts weighted by their point-in-time trailing payoffs, (T, N)."""
    parts = [v for k, v in signals.items() if k.startswith("part ")]
    slopes = np.full((m.n_days, len(parts)), np.nan)  # slopes[u]: return of u + 1 on the parts of u
    for u in range(m.n_days - 1):
        ok = m.listed[u] & m.listed[u + 1]
        if ok.sum() > len(parts) + 1:
            x = np.stack([_z(p[u, ok]) for p in parts], 1)
            y = _z(rankdata(m.returns[u + 1, ok]))
            slopes[u] = np.linalg.lstsq(x, y, rcond=None)[0]
    out = {}
    for hl in half_lives:
        a, acc, wsum = 0.5 ** (1 / hl), np.zeros(len(parts)), 0.0
        sig = np.zeros_like(parts[0])
        for t in range(1, m.n_days):
            if np.isfinite(slopes[t - 1]).all():  # known at t: the return of day t
                acc, wsum = a * acc + slopes[t - 1], a * wsum + 1
            if wsum > 0:
                w = acc / wsum
                ok = m.listed[t]
                sig[t, ok] = sum(wk * _z(p[t, ok]) for wk, p in zip(w, parts, strict=True))
        out[f"timed, half-life {hl:g}"] = sig
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="realistic")
    ap.add_argument("--market-seeds", nargs="+", type=int, default=[11, 12])
    ap.add_argument("--n-stocks", type=int, default=1000)
    ap.add_argument("--timed-half-lives", nargs="*", type=float, default=[])
    args = ap.parse_args()
    rows = []
    for seed in args.market_seeds:
        signals, m = oracles(args.preset, seed, args.n_stocks)
        signals = {k: v for k, v in signals.items() if not k.startswith("part ")} | timed(
            signals, m, args.timed_half_lives
        )
        scores: dict[str, list[float]] = {k: [] for k in signals}
        for t in range(WARM_UP, m.n_days - 1):
            ok = m.listed[t] & m.listed[t + 1]
            for name, s in signals.items():
                scores[name].append(spearmanr(s[t, ok], m.returns[t + 1, ok])[0])
        row = {"market_seed": seed, **{k: float(np.mean(v)) for k, v in scores.items()}}
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print(
        f"\n| {args.preset}, {args.n_stocks} stocks | "
        + " | ".join(f"market {r['market_seed']}" for r in rows)
        + " |"
    )
    print("|---|" + "---|" * len(rows))
    for name in signals:
        cells = [f"{r[name]:.4f} ({r[name] / r['oracle']:.2f})" for r in rows]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
