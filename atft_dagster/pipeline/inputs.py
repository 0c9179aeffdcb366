"""The feature set a dataset was built with, read from its manifest (the registry less what the data
could not support)."""

from __future__ import annotations

import json

from atft_dagster.features.registry import FeatureRegistry
from atft_dagster.features.support import registry_from_manifest
from atft_dagster.pipeline.layout import DataLayout


def feature_manifest(layout: DataLayout) -> dict:
    path = layout.features_manifest
    if not path.exists():
        raise FileNotFoundError(f"no feature manifest at {path}: materialise enriched_features first")
    return json.loads(path.read_text(encoding="utf-8"))


def feature_registry(layout: DataLayout) -> FeatureRegistry:
    return registry_from_manifest(feature_manifest(layout))


def inputs_md(manifest: dict) -> str:
    """The report's account of the inputs: how many features, and which groups the data could not support."""
    used = manifest["n_features"]
    n_registry = used + len(manifest.get("dropped") or {})
    summary = manifest.get("dropped_summary") or []
    if not summary:
        return f"## Inputs\n\nAll {used} registry features (the data supports every one).\n\n"
    return (
        f"## Inputs\n\n{used} of {n_registry} registry features; the data cannot support the rest:\n\n"
        + dropped_table_md(summary)
        + "\n\n"
    )


def dropped_table_md(summary: list[dict]) -> str:
    """Per (group, reason), the features the data could not support (``dropped_summary``), as Markdown."""
    if not summary:
        return "none: the data supports every registry feature"
    rows = "\n".join(f"| {r['group']} | {r['features']} | {r['reason']} |" for r in summary)
    return "| group | features dropped | why |\n|---|---|---|\n" + rows
