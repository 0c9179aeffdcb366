"""Graph lookup for the model: for date t, the edges of the latest rebuild date <= t."""

from __future__ import annotations

import bisect
from datetime import date

import polars as pl


class GraphSnapshots:
    """Edges grouped by rebuild date. Training reads these; it never rebuilds a graph."""

    def __init__(self, edges: pl.DataFrame):
        self._by_date = {k[0]: g for k, g in edges.partition_by("date", as_dict=True).items()}
        self.rebuild_dates: list[date] = sorted(self._by_date)

    def rebuild_date_for(self, t: date) -> date | None:
        i = bisect.bisect_right(self.rebuild_dates, t)
        return self.rebuild_dates[i - 1] if i else None

    def edges_for(self, t: date) -> pl.DataFrame:
        d = self.rebuild_date_for(t)
        if d is None:
            raise LookupError(f"no graph rebuilt on or before {t} (first rebuild {self.rebuild_dates[:1]})")
        return self._by_date[d]
