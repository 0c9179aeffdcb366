"""Model inputs preloaded as dense tensors: (date, code, feature) features and masks, (date, code,
horizon) targets, and each rebuild date's edges. A batch is one or several whole dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import torch

from atft_dagster.features.normalise import NormaliserConfig, normalise
from atft_dagster.features.registry import FeatureRegistry, input_columns
from atft_dagster.graph.snapshots import GraphSnapshots

EDGE_ATTR_COLUMNS = ("corr", "same_sector33", "same_sector17", "same_segment", "fallback")


@dataclass
class Batch:
    x: torch.Tensor  # (n, L, F)
    mask: torch.Tensor  # (n, L, F)
    y: torch.Tensor  # (n, H) raw forward returns, NaN = missing
    date_index: torch.Tensor  # (n,) which of the batch's dates
    edge_index: torch.Tensor  # (2, E), both directions, indices into n
    edge_attr: torch.Tensor  # (E, 5)
    codes: list[np.ndarray]  # per date, the codes in row order
    dates: list[date]


class PanelTensors:
    """Everything training and prediction need, preloaded once."""

    def __init__(
        self,
        features: pl.DataFrame,
        registry: FeatureRegistry,
        graph: pl.DataFrame | None,
        horizons: list[int],
        seq_len: int,
        input_clip: float,
        device: torch.device | str = "cpu",
    ):
        self.names = input_columns(features.columns, registry)
        if self.names != registry.names:
            missing = sorted(set(registry.names) - set(self.names))
            raise ValueError(f"features lack {len(missing)} registry inputs, e.g. {missing[:5]}")
        missing_targets = [f"target_{h}d" for h in horizons if f"target_{h}d" not in features.columns]
        if missing_targets:
            have = sorted(
                c for c in features.columns if c.startswith("target_") and not c.endswith("_excess")
            )
            raise ValueError(
                f"the model's horizons need {missing_targets}, but enriched_features has {have}: "
                "make the features' and the model's horizons agree"
            )
        self.seq_len = seq_len
        self.device = torch.device(device)
        z = normalise(features, registry, NormaliserConfig(clip=input_clip))
        self.dates: list[date] = z["date"].unique().sort().to_list()
        self.codes = z["code"].unique().sort().to_numpy()
        d_idx = {d: i for i, d in enumerate(self.dates)}
        c_idx = {c: j for j, c in enumerate(self.codes.tolist())}
        ti = np.fromiter((d_idx[d] for d in z["date"].to_list()), np.int64, z.height)
        ci = np.fromiter((c_idx[c] for c in z["code"].to_list()), np.int64, z.height)
        T, N, Fn = len(self.dates), len(self.codes), len(self.names)
        vals = z.select(self.names).to_numpy().astype(np.float32)
        ok = np.isfinite(vals)
        x = np.zeros((T, N, Fn), np.float32)
        m = np.zeros((T, N, Fn), np.float32)
        x[ti, ci] = np.where(ok, vals, 0.0)
        m[ti, ci] = ok
        y = np.full((T, N, len(horizons)), np.nan, np.float32)
        y[ti, ci] = z.select([f"target_{h}d" for h in horizons]).to_numpy().astype(np.float32)
        present = np.zeros((T, N), bool)
        present[ti, ci] = True
        self.x = torch.from_numpy(x).to(self.device)
        self.mask = torch.from_numpy(m).to(self.device)
        self.y = torch.from_numpy(y).to(self.device)
        self.present = present
        self.code_index = c_idx
        self.snapshots = GraphSnapshots(graph) if graph is not None else None
        self._edges_cache: dict[date, tuple[np.ndarray, np.ndarray]] = {}

    def without_labels(self, date_indices: list[int]) -> PanelTensors:
        """A shallow copy whose labels on ``date_indices`` are NaN (features, masks and edges shared)."""
        clone = object.__new__(PanelTensors)
        clone.__dict__.update(self.__dict__)
        clone.y = self.y.clone()
        if date_indices:
            clone.y[torch.as_tensor(date_indices, device=self.y.device)] = float("nan")
        return clone

    @property
    def n_features(self) -> int:
        return len(self.names)

    def usable_dates(self, min_stocks: int) -> list[int]:
        """Date indices with a full window and enough stocks (the rest are skipped)."""
        counts = self.present.sum(axis=1)
        return [t for t in range(self.seq_len - 1, len(self.dates)) if counts[t] >= min_stocks]

    def _global_edges(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.snapshots is not None
        rebuild = self.snapshots.rebuild_date_for(self.dates[t])
        if rebuild is None:
            return np.empty((2, 0), np.int64), np.empty((0, len(EDGE_ATTR_COLUMNS)), np.float32)
        if rebuild not in self._edges_cache:
            e = self.snapshots.edges_for(self.dates[t])
            src = np.array([self.code_index.get(c, -1) for c in e["src"].to_list()])
            dst = np.array([self.code_index.get(c, -1) for c in e["dst"].to_list()])
            attr = e.select([pl.col(c).cast(pl.Float32) for c in EDGE_ATTR_COLUMNS]).to_numpy()
            keep = (src >= 0) & (dst >= 0)
            self._edges_cache[rebuild] = (np.stack([src[keep], dst[keep]]), attr[keep])
        return self._edges_cache[rebuild]

    def batch(self, date_indices: list[int]) -> Batch:
        xs, ms, ys, di, eis, eas, codes = [], [], [], [], [], [], []
        offset = 0
        N = len(self.codes)
        for k, t in enumerate(date_indices):
            idx = np.flatnonzero(self.present[t])
            it = torch.from_numpy(idx).to(self.device)
            lo = t - self.seq_len + 1
            xs.append(self.x[lo : t + 1, it].transpose(0, 1))
            ms.append(self.mask[lo : t + 1, it].transpose(0, 1))
            ys.append(self.y[t, it])
            di.append(torch.full((len(idx),), k, dtype=torch.long, device=self.device))
            codes.append(self.codes[idx])
            if self.snapshots is not None:
                gi, attr = self._global_edges(t)
                local = np.full(N, -1)
                local[idx] = np.arange(len(idx))
                s, d = local[gi[0]], local[gi[1]]
                keep = (s >= 0) & (d >= 0)
                s, d, a = s[keep], d[keep], attr[keep]
                eis.append(np.stack([np.concatenate([s, d]), np.concatenate([d, s])]) + offset)
                eas.append(np.concatenate([a, a]))
            offset += len(idx)
        if eis:
            edge_index = torch.from_numpy(np.concatenate(eis, axis=1)).long().to(self.device)
            edge_attr = torch.from_numpy(np.concatenate(eas)).float().to(self.device)
        else:
            edge_index = torch.empty((2, 0), dtype=torch.long, device=self.device)
            edge_attr = torch.empty((0, len(EDGE_ATTR_COLUMNS)), device=self.device)
        return Batch(
            torch.cat(xs),
            torch.cat(ms),
            torch.cat(ys),
            torch.cat(di),
            edge_index,
            edge_attr,
            codes,
            [self.dates[t] for t in date_indices],
        )
