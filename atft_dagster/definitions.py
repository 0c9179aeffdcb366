"""The Dagster code location: ``dagster dev -m atft_dagster.definitions`` or ``dg dev``."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from atft_dagster.defs import evaluation_assets, feature_assets, graph_assets, market_assets, model_assets
from atft_dagster.defs.automation import (
    RetrainPolicy,
    landing_sensor,
    nightly_schedule_for,
    ops_failure_sensor,
    retrain_sensor,
)
from atft_dagster.defs.io_manager import PolarsParquetIOManager
from atft_dagster.defs.jobs import JOBS
from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.resources import MarketSourceResource, ProjectPaths
from atft_dagster.defs.settings import data_dir, market_source_resource, nightly_cron


def build_definitions(
    root: Path | None = None, market_source: MarketSourceResource | None = None
) -> dg.Definitions:
    """All assets, checks, jobs and resources; tests pass their own data folder and source."""
    root = Path(root) if root else data_dir()
    return dg.Definitions(
        assets=[
            *market_assets.ASSETS,
            *feature_assets.ASSETS,
            *graph_assets.ASSETS,
            *model_assets.ASSETS,
            *evaluation_assets.ASSETS,
        ],
        asset_checks=[*market_assets.CHECKS, *feature_assets.CHECKS, *graph_assets.CHECKS],
        jobs=JOBS,
        sensors=[landing_sensor, retrain_sensor, ops_failure_sensor],
        schedules=[nightly_schedule_for(nightly_cron())],
        resources={
            "io_manager": PolarsParquetIOManager(base_dir=str(root / "tables")),
            "market_source": market_source or market_source_resource(root=root),
            "paths": ProjectPaths(data_dir=str(root)),
            "torch_device": model_assets.TorchDevice(),
            "retrain_policy": RetrainPolicy(),
            "mlflow_tracking": MlflowTracking(
                tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_dir=str(root / "mlartifacts")
            ),
        },
    )


defs = build_definitions()
