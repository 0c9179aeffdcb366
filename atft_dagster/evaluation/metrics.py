"""Per-day cross-sectional metrics. Every metric is computed per date, then aggregated over dates."""

from __future__ import annotations

import numpy as np


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as Spearman needs."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    xs = x[order]
    start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or xs[i] != xs[start]:
            if i - start > 1:
                ranks[order[start:i]] = (start + i - 1) / 2.0
            start = i
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_rank(a), _rank(b))


def daily_ic(
    pred: list[np.ndarray], label: list[np.ndarray], min_stocks: int = 2, rank: bool = False
) -> np.ndarray:
    """One IC per date (NaN labels dropped; dates with fewer than ``min_stocks`` give NaN)."""
    out = []
    fn = spearman if rank else pearson
    for p, y in zip(pred, label, strict=True):
        ok = np.isfinite(p) & np.isfinite(y)
        out.append(fn(p[ok], y[ok]) if ok.sum() >= min_stocks else np.nan)
    return np.asarray(out)
