"""What the market data can support. A source may deliver closes only (open = high = low = close) or no
volume; the features that read such columns cannot be computed and are dropped, each with its reason,
instead of failing validation as constant or null columns."""

from __future__ import annotations

import polars as pl

from atft_dagster.features.definitions import default_registry
from atft_dagster.features.registry import INDEX, PANEL, FeatureRegistry, require_manifest

NO_VOLUME = "the source has no volume"
NO_TURNOVER = "the source has neither volume nor turnover"
CLOSE_ONLY = "the source has closes only (open = high = low = close)"
INDEX_CLOSE_ONLY = "the market index has closes only (open = high = low = close)"
CLOSE_ONLY_SHARE = 0.999  # of rows with open = high = low = close that marks a close-only series
PRICE_PARTS = ("open", "high", "low")


def _closes_only(frame: pl.DataFrame) -> bool:
    flat = pl.all_horizontal([pl.col(c) == pl.col("close") for c in PRICE_PARTS])
    return frame.height > 0 and frame.select(flat.fill_null(True).mean()).item() >= CLOSE_ONLY_SHARE


def unavailable_inputs(panel: pl.DataFrame, index: pl.DataFrame | None = None) -> dict[tuple[str, str], str]:
    """(table, column) inputs that carry no information, and why: the panel's, and the market index's
    when given (an index derived from closes, or a close-only TOPIX file, has no open, high or low)."""
    out: dict[tuple[str, str], str] = {}
    volume = panel["volume"]
    if volume.null_count() == panel.height or bool((volume.fill_null(0) == 0).all()):
        out |= {(PANEL, "volume"): NO_VOLUME, (PANEL, "adj_volume"): NO_VOLUME}
        if panel["turnover"].null_count() == panel.height:
            out[(PANEL, "turnover")] = NO_TURNOVER
    if _closes_only(panel):
        out |= {(PANEL, c): CLOSE_ONLY for c in (*PRICE_PARTS, *(f"adj_{c}" for c in PRICE_PARTS))}
    if index is not None and _closes_only(index):
        out |= {(INDEX, c): INDEX_CLOSE_ONLY for c in PRICE_PARTS}
    return out


def supported_registry(
    registry: FeatureRegistry, panel: pl.DataFrame, index: pl.DataFrame | None = None
) -> tuple[FeatureRegistry, dict[str, str]]:
    """The features ``panel`` (and the market ``index``) support, and per dropped feature the reason."""
    return registry.supported(unavailable_inputs(panel, index))


def dropped_summary(dropped: dict[str, str], registry: FeatureRegistry) -> list[dict]:
    """Per (group, reason): how many features were dropped, for the UI and the report."""
    groups = {f.name: f.group for f in registry.features}
    counts: dict[tuple[str, str], int] = {}
    for name, why in dropped.items():
        key = (groups[name], why)
        counts[key] = counts.get(key, 0) + 1
    return [{"group": g, "reason": r, "features": n} for (g, r), n in sorted(counts.items())]


def registry_from_manifest(manifest: dict) -> FeatureRegistry:
    """The registry a dataset was built with: the code's registry restricted to the manifest's features.
    Refused when the code's definitions of those features differ from the ones that built it."""
    registry = default_registry().subset([e["name"] for e in manifest["features"]])
    require_manifest(registry.hash, manifest, "this code's feature registry")
    return registry


def registry_for_frame(features: pl.DataFrame, expected_hash: str, consumer: str) -> FeatureRegistry:
    """The registry of the features present in ``features``, which must be the one ``expected_hash``
    names (a model trained on other inputs is refused)."""
    full = default_registry()
    registry = full.subset([c for c in features.columns if c in set(full.names)])
    require_manifest(expected_hash, registry.manifest(), consumer)
    return registry
