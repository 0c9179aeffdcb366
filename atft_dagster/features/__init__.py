"""Feature engineering (pure core): registry, definitions, computation, validation, normalisation."""

from atft_dagster.features.compute import HORIZONS, compute_features, target_names
from atft_dagster.features.definitions import default_registry
from atft_dagster.features.registry import (
    Feature,
    FeatureRegistry,
    ManifestMismatch,
    input_columns,
    require_manifest,
)
from atft_dagster.features.validation import FeatureValidationError, require_valid, validate_features

__all__ = [
    "HORIZONS",
    "Feature",
    "FeatureRegistry",
    "FeatureValidationError",
    "ManifestMismatch",
    "compute_features",
    "default_registry",
    "input_columns",
    "require_manifest",
    "require_valid",
    "target_names",
    "validate_features",
]
