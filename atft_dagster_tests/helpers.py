"""Shared set-up of the Dagster-level tests: a small synthetic market, a tiny model, an ingest run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.partitions import trading_days_partitions
from atft_dagster.defs.resources import SyntheticMarketResource
from atft_dagster.pipeline.records import ChampionState

SMALL = SyntheticMarketResource(n_stocks=30, n_days=260)
TINY = {
    "hidden": 16,
    "seq_len": 8,
    "attn_heads": 2,
    "epochs": 1,
    "val_days": 20,
    "selection_days": 20,
    "test_days": 30,
    "ensemble_seeds": 2,
    "batch_dates": 8,
    "min_stocks_per_date": 10,
}


def partition_keys() -> list[str]:
    return trading_days_partitions.get_partition_keys()


def ingest(
    defs: dg.Definitions, instance: dg.DagsterInstance, first: int = 0, last: int = 259
) -> dg.ExecuteInProcessResult:
    keys = partition_keys()
    tags = {
        "dagster/asset_partition_range_start": keys[first],
        "dagster/asset_partition_range_end": keys[last],
    }
    return defs.resolve_job_def("ingest").execute_in_process(instance=instance, tags=tags)


def tracking(root) -> MlflowTracking:
    """The MLflow resource ``build_definitions(root)`` configures."""
    from atft_dagster.pipeline.layout import DataLayout

    layout = DataLayout(Path(root))
    return MlflowTracking(tracking_uri=layout.mlflow_uri, artifact_dir=str(layout.mlflow_artifacts))


def champion_of(root) -> ChampionState:
    """The champion as everything reads it: the record of the version the MLflow alias points at."""
    from atft_dagster.pipeline.champion import load_champion
    from atft_dagster.pipeline.layout import DataLayout

    version = tracking(root).champion_version()
    assert version is not None, "no MLflow alias 'champion'"
    champion = load_champion(DataLayout(Path(root)), version)
    assert champion is not None
    return champion
