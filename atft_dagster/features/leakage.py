"""Leakage detection: an input that equals or nearly equals a target, or a target shifted by fewer
rows than its horizon (that would put future returns into today's inputs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from atft_dagster.features.registry import TARGET_PREFIX

# a backward h-day return overlaps the target of row t-(h-1) on h-1 of h days (rho ~ 0.95-0.975):
# legitimate. A copy of a target, shifted or scaled, correlates ~1.
LEAK_CORRELATION = 0.99


@dataclass(frozen=True)
class Leak:
    feature: str
    target: str
    shift: int
    correlation: float


def _horizon(target: str) -> int:
    return int(target.removeprefix(TARGET_PREFIX).split("d")[0])


def find_leaks(df: pl.DataFrame, inputs: list[str], threshold: float = LEAK_CORRELATION) -> list[Leak]:
    """For each target of horizon h and each k in 0..h-1, correlate every input at t with the target of
    row t-k of the same code (which already overlaps the future of t). |corr| >= threshold is a leak."""
    df = df.sort("code", "date")
    targets = [c for c in df.columns if c.startswith(TARGET_PREFIX)]
    if any(i.startswith(TARGET_PREFIX) for i in inputs):
        bad = [i for i in inputs if i.startswith(TARGET_PREFIX)]
        return [Leak(b, b, 0, 1.0) for b in bad]
    x = df.select(inputs).to_numpy().astype(np.float64)
    leaks = []
    for tgt in targets:
        for k in range(_horizon(tgt)):
            y = df.select(pl.col(tgt).shift(k).over("code")).to_series().to_numpy().astype(np.float64)
            ok = np.isfinite(y)
            for j, name in enumerate(inputs):
                xj = x[:, j]
                m = ok & np.isfinite(xj)
                if m.sum() < 30 or np.std(xj[m]) == 0 or np.std(y[m]) == 0:
                    continue
                r = float(np.corrcoef(xj[m], y[m])[0, 1])
                if abs(r) >= threshold:
                    leaks.append(Leak(name, tgt, k, r))
    return leaks
