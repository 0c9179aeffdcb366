"""Benchmark: synthetic market generation, 4000 stocks x 1250 trading days (issue: foundation).

Reports wall time and peak memory (RSS high-water mark of this process) for the simulation and for
building the canonical quote table, the oracle's mean daily RankIC on the default market, and the
calibration of every market preset (oracle RankIC, rank ICIR, JPX Sharpe on 1000 stocks, five seeds).
Run: ./run shell, then python bench/bench_market.py
"""

from __future__ import annotations

import platform
import resource
import time
from datetime import date, datetime

import numpy as np
from scipy.stats import spearmanr

from atft_dagster.market import PRESET_NAMES, SyntheticMarketConfig, market_preset, simulate
from atft_dagster.market.calibration import oracle_quality

CALIBRATION_SEEDS = (101, 202, 303, 404, 505)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def oracle_rank_ic(cfg: SyntheticMarketConfig, warmup: int = 60) -> tuple[float, float]:
    m = simulate(cfg)
    ics = []
    for t in range(warmup, m.n_days - 1):
        ok = m.observed[t] & m.observed[t + 1]
        ics.append(spearmanr(m.oracle[t, ok, 0], m.returns[t + 1, ok])[0])
    ics = np.array(ics)
    return float(ics.mean()), float(ics.std(ddof=1) / np.sqrt(len(ics)))


def effect_shares(cfg: SyntheticMarketConfig) -> dict[str, float]:
    m = simulate(cfg)
    total = np.var(m.oracle[60:, :, 0])
    return {k: round(float(np.var(v[60:]) / total), 3) for k, v in m.effect_parts.items()}


def calibration(n_stocks: int = 1000) -> None:
    """Oracle quality per preset (docs/benchmarks.md, "Market presets"): mean ± s.d. over five seeds."""
    for name in PRESET_NAMES:
        for days in (750, 1250):
            qs = [
                oracle_quality(simulate(market_preset(name, seed=s, n_stocks=n_stocks, n_days=days)))
                for s in CALIBRATION_SEEDS
            ]
            cells = []
            for field in ("rank_ic", "rank_icir", "jpx_sharpe", "share_negative_days"):
                v = np.array([getattr(q, field) for q in qs])
                cells.append(f"{field} {v.mean():.4f} ± {v.std(ddof=1):.4f} [{v.min():.4f}, {v.max():.4f}]")
            print(f"preset {name}, {n_stocks} x {days}: " + "; ".join(cells))


def main() -> None:
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.processor() or platform.machine()})"
    )
    cfg = SyntheticMarketConfig(n_stocks=4000, n_days=1250, start=date(2019, 1, 4))
    t0 = time.perf_counter()
    m = simulate(cfg)
    t1 = time.perf_counter()
    q = m.quotes_frame()
    t2 = time.perf_counter()
    print(
        f"simulate 4000x1250: {t1 - t0:.2f} s; quote table ({q.height:,} rows): {t2 - t1:.2f} s; peak RSS {peak_rss_gib():.2f} GiB"
    )
    for seed in (7, 11, 23):
        mean, se = oracle_rank_ic(SyntheticMarketConfig(seed=seed))
        print(f"default market seed {seed}: oracle mean daily RankIC (1d) {mean:.4f} (s.e. {se:.4f})")
    print("oracle variance shares (default, seed 7):", effect_shares(SyntheticMarketConfig()))
    calibration()


if __name__ == "__main__":
    main()
