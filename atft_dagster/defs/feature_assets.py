"""The enriched_features asset: registry features + targets, validated before anything is written."""

import sys

import dagster as dg
import polars as pl
from pydantic import Field

from atft_dagster.defs.resources import ProjectPaths
from atft_dagster.features import compute_features, default_registry, validate_features
from atft_dagster.features.support import dropped_summary, supported_registry
from atft_dagster.features.validation import MAX_NULL_RATE_AFTER_WARMUP, Failure, FeatureValidationError
from atft_dagster.horizons import HORIZONS, target_horizons
from atft_dagster.pipeline.inputs import dropped_table_md, feature_registry
from atft_dagster.storage import write_json_atomic

FEATURES_GROUP = "features"


class FeaturesConfig(dg.Config):
    horizons: list[int] = Field(
        default=list(HORIZONS),
        description="Forward-return horizons of the targets (trading rows); the model's horizons must be among them.",
    )
    max_null_rate_after_warmup: float = Field(
        default=MAX_NULL_RATE_AFTER_WARMUP,
        description="Largest share of nulls a feature may have after its warm-up.",
    )


def _failures_md(failures: list[Failure]) -> str:
    rows = "\n".join(
        f"| {f.check} | {f.column or ''} | {f.count} | {', '.join(f.samples[:3])} |" for f in failures[:50]
    )
    return "| check | column | cases | samples |\n|---|---|---|---|\n" + rows


@dg.asset(
    group_name=FEATURES_GROUP,
    kinds={"polars", "parquet"},
    ins={"topix_index": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    description="One row per (date, code) with every registry feature (Float32), sector33 and the forward-return "
    "targets target_{h}d / target_{h}d_excess. Validated against the registry-derived schema before it is written; "
    "the feature manifest (names, groups, lookbacks, hash) is written beside it.",
)
def enriched_features(
    context: dg.AssetExecutionContext,
    config: FeaturesConfig,
    market_panel: pl.DataFrame,
    topix_index: pl.DataFrame,
    trading_calendar: pl.DataFrame,
    paths: ProjectPaths,
) -> pl.DataFrame:
    registry, dropped = supported_registry(default_registry(), market_panel, topix_index)
    horizons = tuple(config.horizons)
    df, stats = compute_features(
        market_panel, topix_index, trading_calendar, registry, horizons, progress=sys.stderr.isatty()
    )
    failures = validate_features(df, registry, config.max_null_rate_after_warmup, horizons)
    if failures:
        raise FeatureValidationError(failures)  # nothing is written where downstream reads
    summary = dropped_summary(dropped, default_registry())
    manifest = {**registry.manifest(), "dropped": dropped, "dropped_summary": summary}
    write_json_atomic(manifest, paths.layout.features_manifest)
    groups = registry.groups()
    context.add_output_metadata(
        {
            "n_features": len(registry),
            "features_dropped": len(dropped),
            "dropped_by_data": dg.MetadataValue.md(dropped_table_md(summary)),
            "manifest_hash": manifest["hash"],
            "rows_without_sector_dropped": stats.rows_without_sector,
            "codes": stats.codes,
            "first_date": stats.first_date,
            "last_date": stats.last_date,
            "targets": str([c for c in df.columns if c.startswith("target_")]),
            "groups": dg.MetadataValue.md(
                "| group | features |\n|---|---|\n"
                + "\n".join(f"| {g} | {len(v)} |" for g, v in groups.items())
            ),
            "manifest": dg.MetadataValue.path(str(paths.layout.features_manifest)),
        }
    )
    return df


@dg.asset_check(
    asset=enriched_features,
    blocking=True,
    description="Registry-derived pandera schema: exact feature count (the manifest's: the registry less what the "
    "data cannot support), valid sector33, unique (date, code), no inf, null rate after warm-up, no constant "
    "column, targets in range.",
)
def enriched_features_schema(enriched_features: pl.DataFrame, paths: ProjectPaths) -> dg.AssetCheckResult:
    registry = feature_registry(paths.layout)
    horizons = target_horizons(enriched_features.columns)
    failures = validate_features(enriched_features, registry, horizons=horizons)
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={
            "expected_features": len(registry),
            "rows": enriched_features.height,
            "problems": len(failures),
            "failure_cases": dg.MetadataValue.md(_failures_md(failures) if failures else "none"),
        },
    )
