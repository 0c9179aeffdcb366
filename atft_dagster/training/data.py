"""Model inputs preloaded as device tensors: (date, code, feature) features, their validity masks as the
panel's few distinct mask rows and a (date, code) index into them, (date, code, horizon) targets, each
date's stock rows and each rebuild date's edges. A batch is one or several whole dates, assembled on the
device by gathers whose sizes are known on the host, so building one never waits for the device."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import torch

from atft_dagster.features.normalise import NormaliserConfig, normalise
from atft_dagster.features.registry import FeatureRegistry, input_columns
from atft_dagster.graph.snapshots import GraphSnapshots
from atft_dagster.model.config import TrainingConfig
from atft_dagster.model.mask import PatternMask

EDGE_ATTR_COLUMNS = ("corr", "same_sector33", "same_sector17", "same_segment", "fallback")


@dataclass
class Batch:
    x: torch.Tensor  # (n, L, F)
    mask: PatternMask  # (n, L, F) validity, as the panel's distinct rows
    y: torch.Tensor  # (n, H) raw forward returns, NaN = missing
    date_index: torch.Tensor  # (n,) which of the batch's dates
    edge_index: torch.Tensor  # (2, E), both directions, indices into n
    edge_attr: torch.Tensor  # (E, 5)
    codes: list[np.ndarray]  # per date, the codes in row order
    dates: list[date]
    counts: list[int]  # per date, its number of rows (host-side, so no device sync is needed)


@dataclass
class _Edges:
    """One rebuild date's edges as global code indices, on the device."""

    src: torch.Tensor  # (E,)
    dst: torch.Tensor  # (E,)
    attr: torch.Tensor  # (E, 5)


def _index_of(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions of ``values`` in the sorted unique ``keys`` (every value must be a key)."""
    return np.searchsorted(keys, values)


def _distinct_rows(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of the boolean (R, F) ``ok`` as float32 (P, F), each row's index into them (R,))."""
    packed = np.ascontiguousarray(np.packbits(ok, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return ok[first].astype(np.float32), inverse.reshape(-1)


def _usable(counts: np.ndarray, seq_len: int, min_stocks: int) -> list[int]:
    """Date indices with a full ``seq_len`` window and at least ``min_stocks`` stocks."""
    return [t for t in range(seq_len - 1, len(counts)) if counts[t] >= min_stocks]


@dataclass(frozen=True)
class PanelDates:
    """A features table's trading dates and stocks per date: all a walk-forward split reads, without
    building the tensors (the training's plan step)."""

    dates: list[date]
    counts: np.ndarray  # (T,) stocks per date
    seq_len: int

    @classmethod
    def of(cls, features: pl.DataFrame, seq_len: int) -> PanelDates:
        """The same dates and counts as ``PanelTensors`` of ``features`` (one row per date and code)."""
        per_day = features.group_by("date").len().sort("date")
        return cls(per_day["date"].to_list(), per_day["len"].to_numpy(), seq_len)

    def usable_dates(self, min_stocks: int) -> list[int]:
        return _usable(self.counts, self.seq_len, min_stocks)


class PanelTensors:
    """Everything training and prediction need, preloaded once on ``device``."""

    def __init__(
        self,
        features: pl.DataFrame,
        registry: FeatureRegistry,
        graph: pl.DataFrame | None,
        horizons: list[int],
        seq_len: int,
        input_clip: float,
        device: torch.device | str = "cpu",
        from_date: date | None = None,
    ):
        """``from_date``: keep only the dates from then on (earlier rows still feed the normaliser's
        date-level windows)."""
        self.names = input_columns(features.columns, registry)
        group_of = {f.name: f.group for f in registry.features}
        self.groups = [group_of[n] for n in self.names]  # each input's registry group
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
        z = normalise(features, registry, NormaliserConfig(clip=input_clip), from_date)
        day_keys = z["date"].unique().sort()
        self.dates: list[date] = day_keys.to_list()
        self.codes = z["code"].unique().sort().to_numpy()
        ti = _index_of(z["date"].to_physical().to_numpy(), day_keys.to_physical().to_numpy())
        ci = _index_of(z["code"].to_numpy(), self.codes)
        T, N, Fn = len(self.dates), len(self.codes), len(self.names)
        vals = z.select(self.names).to_numpy().astype(np.float32)
        ok = np.isfinite(vals)
        x = np.zeros((T, N, Fn), np.float32)
        x[ti, ci] = np.where(ok, vals, 0.0)
        del vals
        mask_rows, row_pattern = _distinct_rows(ok)
        # (T, N) -> row of mask_rows; absent stock-days take the all-zero row appended last
        mask_id = np.full((T, N), len(mask_rows), np.int64)
        mask_id[ti, ci] = row_pattern
        del ok
        y = np.full((T, N, len(horizons)), np.nan, np.float32)
        y[ti, ci] = z.select([f"target_{h}d" for h in horizons]).to_numpy().astype(np.float32)
        present = np.zeros((T, N), bool)
        present[ti, ci] = True
        self.x = torch.from_numpy(x).to(self.device)
        zero_row = np.zeros((1, Fn), np.float32)
        self.mask_rows = torch.from_numpy(np.concatenate([mask_rows, zero_row])).to(self.device)
        self.mask_id = torch.from_numpy(mask_id).to(self.device)
        self.y = torch.from_numpy(y).to(self.device)
        self.present = present
        self.code_index = {c: j for j, c in enumerate(self.codes.tolist())}
        # per date: its stocks' code indices (sorted), flat on the device; offsets on the host
        self.counts = present.sum(axis=1)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self._rows = torch.from_numpy(np.nonzero(present)[1]).to(self.device)
        # (T, N): a stock's row position within its date, -1 when it does not trade
        local = np.full((T, N), -1, np.int64)
        local[present] = np.concatenate([np.arange(c) for c in self.counts]) if T else []
        self._local = torch.from_numpy(local).to(self.device)
        self.snapshots = GraphSnapshots(graph) if graph is not None else None
        self._rebuild_of = np.full(T, -1, np.int64)  # date -> index into self._edges
        self._kept = np.zeros(T, np.int64)  # date -> edges with both ends trading that day
        self._all_kept = np.zeros(T, bool)
        self._edges: list[_Edges] = []
        if self.snapshots is not None:
            self._load_edges()

    @classmethod
    def for_model(
        cls,
        features: pl.DataFrame,
        registry: FeatureRegistry,
        graph: pl.DataFrame | None,
        cfg: TrainingConfig,
        device: torch.device | str = "cpu",
    ) -> PanelTensors:
        """The tensors a model of ``cfg`` reads (its horizons, input window and input clip)."""
        return cls(features, registry, graph, cfg.horizons, cfg.seq_len, cfg.input_clip, device)

    @classmethod
    def for_day(
        cls,
        features: pl.DataFrame,
        registry: FeatureRegistry,
        graph: pl.DataFrame | None,
        day: date,
        horizons: list[int],
        seq_len: int,
        input_clip: float,
        device: torch.device | str = "cpu",
        history: int = 0,
    ) -> tuple[PanelTensors, int]:
        """Only what a prediction for ``day`` reads: its ``seq_len``-day input window (normalised from the
        trailing date-level window it needs, no more), ``history`` earlier prediction dates with their
        labels (what skip timing reads), and the graph rebuilds in force over them. Returns the tensors and
        the index of ``day`` in them; the inputs equal those of the full history's tensors."""
        days = features.select(pl.col("date").unique().sort()).to_series()
        days = days.filter(days <= day)
        if days.is_empty() or days[-1] != day:
            raise ValueError(f"no features for {day}")
        if len(days) < seq_len:
            raise ValueError(f"{day} has fewer than {seq_len} trading days of history")
        reach = seq_len + history + NormaliserConfig().date_feature_window - 1
        first = days[max(0, len(days) - reach)]
        window = features.filter(pl.col("date").is_between(first, day))
        start = days[max(0, len(days) - seq_len - history)]
        if graph is not None:
            rebuilds = graph.filter(pl.col("date") <= day)["date"]
            first_scored = days[max(0, len(days) - 1 - history)]  # the earliest date whose edges are read
            in_force = rebuilds.filter(rebuilds <= first_scored).max() or rebuilds.min()
            graph = graph.filter(pl.col("date").is_between(in_force, day)) if len(rebuilds) else graph.clear()
        data = cls(window, registry, graph, horizons, seq_len, input_clip, device, start)
        return data, len(data.dates) - 1

    def _load_edges(self) -> None:
        assert self.snapshots is not None
        by_rebuild: dict[date, int] = {}
        host: list[tuple[np.ndarray, np.ndarray]] = []
        for t, d in enumerate(self.dates):
            rebuild = self.snapshots.rebuild_date_for(d)
            if rebuild is None:
                continue
            if rebuild not in by_rebuild:
                e = self.snapshots.edges_for(d)
                src = np.array([self.code_index.get(c, -1) for c in e["src"].to_list()], np.int64)
                dst = np.array([self.code_index.get(c, -1) for c in e["dst"].to_list()], np.int64)
                attr = e.select([pl.col(c).cast(pl.Float32) for c in EDGE_ATTR_COLUMNS]).to_numpy()
                keep = (src >= 0) & (dst >= 0) & (src != dst)  # the model adds each self-loop itself
                by_rebuild[rebuild] = len(self._edges)
                self._edges.append(
                    _Edges(
                        torch.from_numpy(src[keep]).to(self.device),
                        torch.from_numpy(dst[keep]).to(self.device),
                        torch.from_numpy(np.ascontiguousarray(attr[keep])).to(self.device),
                    )
                )
                host.append((src[keep], dst[keep]))
            r = by_rebuild[rebuild]
            both = self.present[t, host[r][0]] & self.present[t, host[r][1]]
            self._rebuild_of[t], self._kept[t], self._all_kept[t] = r, both.sum(), both.all()

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
        return _usable(self.counts, self.seq_len, min_stocks)

    def _date_edges(self, t: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Date t's edges in both directions as batch row indices (rows of t start at ``offset``)."""
        e = self._edges[self._rebuild_of[t]]
        local = self._local[t]
        s, d, a = local[e.src], local[e.dst], e.attr
        if not self._all_kept[t]:  # drop edges to stocks absent that day; the count is known on the host
            keep = (s >= 0) & (d >= 0)
            pos = torch.argsort((~keep).to(torch.int32), stable=True)[: int(self._kept[t])]
            s, d, a = s[pos], d[pos], a[pos]
        s, d = s + offset, d + offset
        return torch.stack([torch.cat([s, d]), torch.cat([d, s])]), torch.cat([a, a])

    def _mask(self, window: torch.Tensor, rows: torch.Tensor) -> PatternMask:
        """The batch's mask over the panel's distinct rows; compacted to those it uses when the panel has
        more distinct rows than the batch has stock-days (else the panel's few rows cost less than a sync)."""
        mask = PatternMask(self.mask_id[window, rows[:, None]], self.mask_rows)
        return mask.compact() if len(self.mask_rows) > window.numel() else mask

    def last_day(self, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Date t's rows without their input window: (x at t (n, F), labels (n, H), edge_index, edge_attr),
        each equal to ``batch([t])``'s last step, labels and edges."""
        rows = self._rows[self.offsets[t] : self.offsets[t + 1]]
        return (self.x[t, rows], self.y[t, rows], *self._edges_of([t], [len(rows)]))

    def _edges_of(self, date_indices: list[int], counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The dates' edges as row indices of their rows stacked in this order (none: empty tensors)."""
        eis, eas, offset = [], [], 0
        for t, c in zip(date_indices, counts, strict=True):
            if self._rebuild_of[t] >= 0:
                ei, ea = self._date_edges(t, offset)
                eis.append(ei)
                eas.append(ea)
            offset += c
        if eis:
            return torch.cat(eis, dim=1), torch.cat(eas)
        empty = torch.empty((2, 0), dtype=torch.long, device=self.device)
        return empty, torch.empty((0, len(EDGE_ATTR_COLUMNS)), device=self.device)

    def batch(self, date_indices: list[int]) -> Batch:
        counts = [int(self.counts[t]) for t in date_indices]
        rows = torch.cat([self._rows[self.offsets[t] : self.offsets[t + 1]] for t in date_indices])
        day = torch.cat(
            [
                torch.full((c,), t, dtype=torch.long, device=self.device)
                for t, c in zip(date_indices, counts, strict=True)
            ]
        )
        steps = torch.arange(-self.seq_len + 1, 1, device=self.device)
        window = day[:, None] + steps[None, :]  # (n, L) date indices of each row's input window
        date_index = torch.cat(
            [torch.full((c,), k, dtype=torch.long, device=self.device) for k, c in enumerate(counts)]
        )
        edge_index, edge_attr = self._edges_of(date_indices, counts)
        return Batch(
            self.x[window, rows[:, None]],
            self._mask(window, rows),
            self.y[day, rows],
            date_index,
            edge_index,
            edge_attr,
            [self.codes[self.present[t]] for t in date_indices],
            [self.dates[t] for t in date_indices],
            counts,
        )
