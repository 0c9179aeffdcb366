"""Benchmark: the stock graph for 4000 stocks x 1250 trading days (issue: stock graph).

Measures build_stock_graph rebuilding every 5 days and every day, and a naive reference measured in
the same run: per rebuild date, a pandas DataFrame.corr() of the window's market-adjusted returns
(pairwise NaN handling, no weighting) followed by a top-k per row. The naive reference is timed on a
sample of dates and reported per date, next to ours per date.
Run: ./run shell, then python bench/bench_graph.py [--skip-daily]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from datetime import date, datetime

import numpy as np
import pandas as pd

from atft_dagster.graph import GraphConfig, build_stock_graph
from atft_dagster.graph.build import returns_matrix
from atft_dagster.market import SyntheticMarketConfig
from atft_dagster.panel import build_market_panel
from atft_dagster.sources import SyntheticSource


def naive_graph_at(mat, t: int, cfg: GraphConfig) -> int:
    lo = max(0, t - cfg.lookback + 1)
    window = pd.DataFrame(mat.returns[lo : t + 1] - mat.market[lo : t + 1, None])
    corr = window.corr(min_periods=cfg.min_observations).to_numpy().copy()  # pandas 3: a read-only view
    np.fill_diagonal(corr, -np.inf)
    corr = np.nan_to_num(corr, nan=-np.inf)
    nb = np.argsort(-corr, axis=1)[:, : cfg.top_k]
    return int(nb.size)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-daily", action="store_true", help="Only the default every-5 rebuild.")
    args = ap.parse_args()
    n_stocks, n_days = 4000, 1250
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}), {n_stocks} stocks x {n_days} days"
    )
    src = SyntheticSource(SyntheticMarketConfig(n_stocks=n_stocks, n_days=n_days, start=date(2019, 1, 4)))
    d = src.history_days()
    panel = build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    )
    topix = src.topix(d[0], d[-1])
    results = {}
    for every in (5,) if args.skip_daily else (5, 1):
        cfg = GraphConfig(rebuild_every=every)
        t0 = time.perf_counter()
        g = build_stock_graph(panel, topix, cfg)
        secs = time.perf_counter() - t0
        n = g["date"].n_unique()
        results[every] = secs / n
        print(
            f"rebuild every {every}: {n} rebuild dates, {g.height:,} edges, {secs:.1f} s ({1000 * secs / n:.0f} ms per date)"
        )
    mat = returns_matrix(panel, topix)
    sample = [300, 700, 1100]
    t0 = time.perf_counter()
    for t in sample:
        naive_graph_at(mat, t, GraphConfig())
    naive = (time.perf_counter() - t0) / len(sample)
    print(
        f"naive pandas .corr() + top-k: {naive:.1f} s per date (on {len(sample)} dates); every-5 run would take {naive * len(range(0, n_days, 5)) / 60:.0f} min"
    )
    print(f"ratio naive / ours per date: {naive / results[5]:.0f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB")


if __name__ == "__main__":
    main()
