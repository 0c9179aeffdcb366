"""The Dagster code location: ``dagster dev -m atft_dagster.definitions`` or ``dg dev``."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import dagster as dg

import atft_dagster.defs
from atft_dagster.defs import model_assets
from atft_dagster.defs.automation import (
    RetrainPolicy,
    landing_sensor,
    nightly_schedule_for,
    ops_failure_sensor,
    retrain_sensor,
)
from atft_dagster.defs.executors import executor_for
from atft_dagster.defs.io_manager import PolarsParquetIOManager
from atft_dagster.defs.jobs import JOBS
from atft_dagster.defs.mlflow_resource import MlflowTracking, postgres_tracking_uri
from atft_dagster.defs.resources import MarketSourceResource, ProjectPaths
from atft_dagster.defs.settings import (
    data_dir,
    database_url,
    executor_name,
    market_source_resource,
    nightly_cron,
)
from atft_dagster.pipeline.layout import DataLayout

OWNERS = ["team:quant-research"]


@functools.cache
def source_version() -> str:
    """Every asset's code version: a hash of the package's source, so the UI marks materialisations made
    by other code."""
    digest = hashlib.sha256()
    for path in sorted(Path(atft_dagster.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_definitions(
    root: Path | None = None,
    market_source: MarketSourceResource | None = None,
    database_url: str | None = None,
    executor: str = "multiprocess",
) -> dg.Definitions:
    """All assets, checks, jobs and resources; tests pass their own data folder and source. With a
    PostgreSQL ``database_url``, MLflow's store is on that database (the Dagster instance's storage is
    the instance config's: dagster.postgres.yaml). ``executor``: :func:`executor_for`'s name."""
    root = Path(root) if root else data_dir()
    layout = DataLayout(root)
    tracking_uri = postgres_tracking_uri(database_url) if database_url else layout.mlflow_uri
    return dg.Definitions(
        # every asset and check defined anywhere in defs/ (one module per domain; nothing listed by hand)
        assets=dg.map_asset_specs(
            lambda spec: spec.replace_attributes(owners=OWNERS, code_version=source_version()),
            dg.load_assets_from_package_module(atft_dagster.defs),
        ),
        asset_checks=dg.load_asset_checks_from_package_module(atft_dagster.defs),
        jobs=JOBS,
        executor=executor_for(executor),
        sensors=[landing_sensor, retrain_sensor, ops_failure_sensor],
        schedules=[nightly_schedule_for(nightly_cron())],
        resources={
            "io_manager": PolarsParquetIOManager(base_dir=str(layout.tables_dir)),
            "market_source": market_source or market_source_resource(root=root),
            "paths": ProjectPaths(data_dir=str(root)),
            "torch_device": model_assets.TorchDevice(),
            "retrain_policy": RetrainPolicy(),
            "mlflow_tracking": MlflowTracking(
                tracking_uri=tracking_uri, artifact_dir=str(layout.mlflow_artifacts)
            ),
        },
    )


defs = build_definitions(database_url=database_url(), executor=executor_name())
