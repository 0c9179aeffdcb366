"""What the market data can support. A source may deliver closes only (open = high = low = close) or no
volume; the features that read such columns cannot be computed and are dropped, each with its reason,
instead of failing validation as constant or null columns."""

from __future__ import annotations

import polars as pl

from atft_dagster.features.definitions import default_registry
from atft_dagster.features.registry import FeatureRegistry, require_manifest

NO_VOLUME = "the source has no volume"
NO_TURNOVER = "the source has neither volume nor turnover"
CLOSE_ONLY = "the source has closes only (open = high = low = close)"
CLOSE_ONLY_SHARE = 0.999  # of rows with open = high = low = close that marks a close-only source


def unavailable_inputs(panel: pl.DataFrame) -> dict[str, str]:
    """Panel columns that carry no information, and why."""
    out: dict[str, str] = {}
    volume = panel["volume"]
    no_volume = volume.null_count() == panel.height or bool((volume.fill_null(0) == 0).all())
    if no_volume:
        out |= {"volume": NO_VOLUME, "adj_volume": NO_VOLUME}
        if panel["turnover"].null_count() == panel.height:
            out["turnover"] = NO_TURNOVER
    flat = (
        (pl.col("open") == pl.col("close"))
        & (pl.col("high") == pl.col("close"))
        & (pl.col("low") == pl.col("close"))
    )
    share = panel.select(flat.fill_null(True).mean()).item() if panel.height else 0.0
    if share >= CLOSE_ONLY_SHARE:
        out |= {c: CLOSE_ONLY for c in ("open", "high", "low", "adj_open", "adj_high", "adj_low")}
    return out


def supported_registry(
    registry: FeatureRegistry, panel: pl.DataFrame
) -> tuple[FeatureRegistry, dict[str, str]]:
    """The features ``panel`` supports, and per dropped feature the reason."""
    return registry.supported(unavailable_inputs(panel))


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
