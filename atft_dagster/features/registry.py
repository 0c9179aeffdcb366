"""The feature registry: the single source of truth for which inputs exist.

A :class:`Feature` has a name, a group, a lookback (trading days of history it needs before it is defined)
and a polars expression. Features are computed in stages: an expression may read the base panel columns,
helper columns and features of earlier stages. The expected feature count, the pandera schema and the
manifest hash all derive from the registry; nothing types the count by hand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import polars as pl

TARGET_PREFIX = "target_"
HELPER_PREFIX = "_"
# Features of these groups and helpers with this prefix are computed on the market index (TOPIX) frame
# and the calendar frame, not on the stock panel: their input columns are that table's.
MARKET_GROUP, CALENDAR_GROUP, MARKET_HELPER_PREFIX = "market", "calendar", "_mkt_"
PANEL, INDEX, CALENDAR = "panel", "index", "calendar"


class Stage(IntEnum):
    """Order of computation. Within a stage expressions see only earlier stages."""

    BASE = 0  # per-code helpers from the panel (and the joined market columns)
    SERIES = 1  # per-code time series
    SERIES2 = 2  # per-code series of stage-1 columns
    SECTOR = 3  # per (date, sector33)
    CROSS = 4  # per date, across all stocks


class Scope(StrEnum):
    STOCK = "stock"  # varies across stocks on a date: normalised cross-sectionally
    DATE = "date"  # one value per date (market, calendar): not normalised cross-sectionally


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    lookback: int
    expr: pl.Expr
    stage: Stage = Stage.SERIES
    scope: Scope = Scope.STOCK

    def __post_init__(self) -> None:
        if self.name.startswith((TARGET_PREFIX, HELPER_PREFIX)):
            raise ValueError(
                f"feature name {self.name!r} may not start with {TARGET_PREFIX!r} or {HELPER_PREFIX!r}"
            )


@dataclass(frozen=True)
class Helper:
    """An intermediate column (name starts with ``_``), dropped after computation."""

    name: str
    expr: pl.Expr
    stage: Stage = Stage.BASE

    def __post_init__(self) -> None:
        if not self.name.startswith(HELPER_PREFIX):
            raise ValueError(f"helper {self.name!r} must start with {HELPER_PREFIX!r}")


class ManifestMismatch(ValueError):
    """A consumer was built for a different feature set than the dataset it was given."""


@dataclass(frozen=True)
class FeatureRegistry:
    features: tuple[Feature, ...]
    helpers: tuple[Helper, ...] = ()

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {dupes}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def by_name(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in self.features:
            out.setdefault(f.group, []).append(f.name)
        return out

    def stock_features(self) -> list[str]:
        return [f.name for f in self.features if f.scope == Scope.STOCK]

    def _table(self, name: str) -> str:
        """The table a feature or helper is computed on, whose columns it reads directly."""
        if name.startswith(MARKET_HELPER_PREFIX):
            return INDEX
        group = next((f.group for f in self.features if f.name == name), None)
        return {MARKET_GROUP: INDEX, CALENDAR_GROUP: CALENDAR}.get(group or "", PANEL)

    def _reads(self, name: str) -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
        """((table, input column) pairs, features) that ``name`` reads, through every helper and feature
        on the way."""
        exprs = {f.name: f.expr for f in self.features} | {h.name: h.expr for h in self.helpers}
        features = set(self.names)
        seen, todo, columns = {name}, [name], set()
        while todo:
            node = todo.pop()
            for root in exprs[node].meta.root_names():
                if root in exprs and root not in seen:
                    seen.add(root)
                    todo.append(root)
                elif root not in exprs:
                    columns.add((self._table(node), root))
        return frozenset(columns), frozenset((seen - {name}) & features)

    def inputs(self, name: str) -> frozenset[tuple[str, str]]:
        """The (table, column) pairs — table one of panel, index, calendar — a feature or helper reads,
        through the helpers and features its expression reads: derived from the expressions, never
        declared by hand."""
        return self._reads(name)[0]

    def base_columns(self, name: str) -> frozenset[str]:
        """The input columns a feature or helper reads, of whichever table."""
        return frozenset(column for _, column in self.inputs(name))

    def subset(self, names: list[str] | set[str]) -> FeatureRegistry:
        """The features named (in registry order) and the helpers that read none of the others."""
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise ManifestMismatch(f"features unknown to this registry: {unknown[:5]}")
        keep = set(names)
        gone = set(self.names) - keep
        helpers = tuple(h for h in self.helpers if not self._reads(h.name)[1] & gone)
        return FeatureRegistry(tuple(f for f in self.features if f.name in keep), helpers)

    def supported(self, unavailable: dict[tuple[str, str], str]) -> tuple[FeatureRegistry, dict[str, str]]:
        """Drop every feature that reads an unavailable input ((table, column) -> why it is unavailable).
        Returns the remaining registry and, per dropped feature, the reason."""
        dropped = {}
        for f in self.features:
            missing = self.inputs(f.name) & set(unavailable)
            if missing:
                dropped[f.name] = "; ".join(sorted({unavailable[c] for c in missing}))
        return self.subset([n for n in self.names if n not in dropped]), dropped

    def manifest(self) -> dict:
        """Names, groups, lookbacks and a hash over them and the definitions."""
        entries = [
            {
                "name": f.name,
                "group": f.group,
                "lookback": f.lookback,
                "scope": f.scope.value,
                "stage": int(f.stage),
            }
            for f in self.features
        ]
        definition = [(f.name, str(f.expr)) for f in self.features] + [
            (h.name, str(h.expr)) for h in self.helpers
        ]
        digest = hashlib.sha256(json.dumps([entries, definition], sort_keys=True).encode()).hexdigest()
        return {"n_features": len(entries), "features": entries, "hash": digest}

    @property
    def hash(self) -> str:
        return self.manifest()["hash"]


def require_manifest(expected_hash: str, manifest: dict, consumer: str) -> None:
    """Refuse a dataset built from another feature set (the replaced system silently used 99 of 306)."""
    got = manifest.get("hash")
    if got != expected_hash:
        raise ManifestMismatch(
            f"{consumer} was built for feature manifest {expected_hash[:12]} but the dataset has "
            f"{str(got)[:12]} ({manifest.get('n_features')} features): rebuild one of them"
        )


def input_columns(columns: list[str], registry: FeatureRegistry) -> list[str]:
    """The model inputs among ``columns``: registry features only, never a target."""
    allowed = set(registry.names)
    return [c for c in columns if c in allowed and not c.startswith(TARGET_PREFIX)]
