"""The project on PostgreSQL, for real: a server started for the test, the instance from
dagster.postgres.yaml (runs, events, schedules) and MLflow's tracking and registry on the same database
(schema `mlflow`), one URL for both. ingest -> retrain -> champion -> predictions runs, and everything is
found on the server. `.ci/run` installs PostgreSQL and sets ATFT_REQUIRE_POSTGRES, so there it cannot skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from atft_dagster.definitions import build_definitions
from atft_dagster.defs.settings import PG_DRIVER_SCHEME, with_pg_driver
from atft_dagster_tests.helpers import SMALL, TINY, ingest
from atft_dagster_tests.postgres import server_binaries, temporary_postgres

REPO = Path(__file__).resolve().parents[1]
RETRAIN = {
    "ops": {
        "model_checkpoint": {"config": {**TINY, "ensemble_seeds": 1}},
        "evaluation_report": {
            "config": {
                "lightgbm_max_rounds": 5,
                "lightgbm_num_leaves": [7],
                "lightgbm_min_child_samples": [50],
                "ridge_penalty_scales": [1e-3],
                "linear_graph_penalties": [1.0],
                "graph_off_baseline": False,
                "deployed_rows": False,
            }
        },
    }
}


@pytest.fixture(scope="module")
def database_url():
    if server_binaries() is None:
        if os.environ.get("ATFT_REQUIRE_POSTGRES"):
            pytest.fail("ATFT_REQUIRE_POSTGRES is set but PostgreSQL (initdb, pg_ctl) is not installed")
        pytest.skip("PostgreSQL is not installed here (CI installs it)")
    with temporary_postgres() as url:
        yield with_pg_driver(url)  # as ./run and settings.database_url() give it


def _tables(url: str, schema: str) -> set[str]:
    import psycopg2

    conn = psycopg2.connect(url.replace(PG_DRIVER_SCHEME, "postgresql://"))
    try:
        cur = conn.cursor()
        cur.execute("select table_name from information_schema.tables where table_schema = %s", (schema,))
        return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def test_ingest_retrain_and_predict_on_postgres(database_url, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ATFT_DATABASE_URL", database_url)
    root = tmp_path / "data"
    defs = build_definitions(root, SMALL, database_url=database_url)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert ingest(defs, instance).success
        retrain = defs.resolve_job_def("retrain").execute_in_process(instance=instance, run_config=RETRAIN)
        assert retrain.success
        runs = instance.get_runs()
        assert {r.job_name for r in runs} == {"ingest", "retrain"}
        assert instance.get_latest_materialization_event(dg.AssetKey("latest_predictions")) is not None
    # MLflow: runs, the registered model and the champion alias are on the same server, in their schema
    tracking = defs.resources["mlflow_tracking"]
    assert tracking.tracking_uri.startswith(database_url)
    version = tracking.champion_version()
    assert version is not None and not (root / "mlflow.db").exists()
    assert {"runs", "registered_models", "registered_model_aliases"} <= _tables(database_url, "mlflow")
    assert {"runs", "event_logs"} <= _tables(database_url, "public")
    predictions = pl.read_parquet(root / "tables" / "latest_predictions.parquet")
    assert predictions.height > 0 and (root / "champions" / f"v{version}.json").exists()
