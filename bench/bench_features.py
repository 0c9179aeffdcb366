"""Benchmark: all registry features for 4000 stocks x 1250 trading days (issue: enriched features).

Each measurement runs in its own child process so its peak RSS is its own:
  polars-all      every registry feature + targets (the enriched_features computation)
  polars-subset   the 8 reference features below, through the same registry machinery
  pandas-subset   the same 8 features written the straightforward pandas groupby-rolling way
Run: ./run shell, then python bench/bench_features.py
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

SUBSET = (
    "ret_5d",
    "vol_20d",
    "sma_gap_20d",
    "ema_gap_20d",
    "rsi_14",
    "volume_ratio_20",
    "range_pos_20d",
    "beta_60d",
)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def prepare(folder: Path, n_stocks: int, n_days: int) -> None:
    from atft_dagster.market import SyntheticMarketConfig
    from atft_dagster.panel import build_market_panel
    from atft_dagster.sources import SyntheticSource

    src = SyntheticSource(SyntheticMarketConfig(n_stocks=n_stocks, n_days=n_days, start=date(2019, 1, 4)))
    d = src.history_days()
    build_market_panel(
        src.daily_quotes(d[0], d[-1]), src.sector_master(d[-1]), src.calendar(d[0], d[-1])
    ).write_parquet(folder / "panel.parquet")
    src.topix(d[0], d[-1]).write_parquet(folder / "topix.parquet")
    src.calendar(d[0], d[-1] + timedelta(days=120)).write_parquet(folder / "calendar.parquet")


def child(kind: str, folder: Path) -> dict:
    import polars as pl

    panel = pl.read_parquet(folder / "panel.parquet")
    topix = pl.read_parquet(folder / "topix.parquet")
    cal = pl.read_parquet(folder / "calendar.parquet")
    base = _peak_gib()
    t0 = time.perf_counter()
    if kind in ("polars-all", "polars-subset"):
        from atft_dagster.features import FeatureRegistry, compute_features, default_registry

        reg = default_registry()
        if kind == "polars-subset":
            reg = FeatureRegistry(features=tuple(reg.by_name(n) for n in SUBSET), helpers=reg.helpers)
        out, _ = compute_features(panel, topix, cal, reg)
        n = len(reg)
    else:
        out = pandas_subset(panel, topix)
        n = len(SUBSET)
    secs = time.perf_counter() - t0
    return {
        "kind": kind,
        "seconds": secs,
        "features": n,
        "rows": len(out),
        "peak_gib": _peak_gib(),
        "input_gib": base,
    }


def pandas_subset(panel, topix):
    import numpy as np
    import pandas as pd

    p = panel.sort(["code", "date"]).to_pandas()
    m = topix.to_pandas().set_index("date")["close"].pct_change()
    p["mkt"] = p["date"].map(m)
    g = p.groupby("code", sort=False)
    c = p["adj_close"]
    out = pd.DataFrame({"date": p["date"], "code": p["code"]})
    out["ret_5d"] = g["adj_close"].pct_change(5)
    p["r1"] = g["adj_close"].pct_change()
    gr = p.groupby("code", sort=False)
    out["vol_20d"] = gr["r1"].rolling(20).std().reset_index(level=0, drop=True)
    out["sma_gap_20d"] = c / g["adj_close"].rolling(20).mean().reset_index(level=0, drop=True) - 1
    ema = g["adj_close"].transform(lambda s: s.ewm(span=20, adjust=False, min_periods=20).mean())
    out["ema_gap_20d"] = c / ema - 1
    d = g["adj_close"].diff()
    p["gain"], p["loss"] = d.clip(lower=0), (-d).clip(lower=0)
    gg = p.groupby("code", sort=False)
    up = gg["gain"].transform(lambda s: s.ewm(alpha=1 / 14, adjust=False, min_periods=15).mean())
    dn = gg["loss"].transform(lambda s: s.ewm(alpha=1 / 14, adjust=False, min_periods=15).mean())
    out["rsi_14"] = 100 * up / (up + dn)
    out["volume_ratio_20"] = p["adj_volume"] / g["adj_volume"].rolling(20).mean().reset_index(
        level=0, drop=True
    )
    hi = g["adj_high"].rolling(20).max().reset_index(level=0, drop=True)
    lo = g["adj_low"].rolling(20).min().reset_index(level=0, drop=True)
    out["range_pos_20d"] = (c - lo) / (hi - lo)
    cov = gr[["r1", "mkt"]].rolling(60).cov().unstack()[("r1", "mkt")].reset_index(level=0, drop=True)
    var = gr["mkt"].rolling(60).var().reset_index(level=0, drop=True)
    out["beta_60d"] = cov / var
    return out.replace([np.inf, -np.inf], np.nan)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], Path(sys.argv[3]))))
        return
    n_stocks, n_days = 4000, 1250
    print(
        f"# {datetime.now():%Y-%m-%d %H:%M} on {platform.node()} ({platform.machine()}), {n_stocks} stocks x {n_days} days"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        prepare(folder, n_stocks, n_days)
        print(f"inputs prepared in {time.perf_counter() - t0:.1f} s")
        results = {}
        for kind in ("polars-all", "polars-subset", "pandas-subset"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(folder)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[kind] = r
            print(
                f"{kind:14s} {r['features']:4d} features  {r['seconds']:7.2f} s  peak RSS {r['peak_gib']:.2f} GiB (inputs {r['input_gib']:.2f} GiB)  rows {r['rows']:,}"
            )
        ratio = results["pandas-subset"]["seconds"] / results["polars-subset"]["seconds"]
        per_feature = (results["pandas-subset"]["seconds"] / len(SUBSET)) / (
            results["polars-all"]["seconds"] / results["polars-all"]["features"]
        )
        print(
            f"pandas / polars on the same {len(SUBSET)} features: {ratio:.1f}x; per feature, pandas subset vs polars all: {per_feature:.1f}x"
        )


if __name__ == "__main__":
    main()
