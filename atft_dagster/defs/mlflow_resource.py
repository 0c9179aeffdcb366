"""MLflow tracking: one MLflow run per Dagster run, tagged with the Dagster run id.

Same contract as dagster-mlflow's ``mlflow_tracking`` (assets of one Dagster run share one MLflow run, found
again by its ``dagster_run_id`` tag), plus what that resource cannot do here: the experiment's artifact
root is pinned under the project's data folder (dagster-mlflow creates the experiment with MLflow's default
root, relative to whatever directory the process runs in), and each use ends its run cleanly.
"""

import functools
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

RUN_TAG = "dagster_run_id"
REGISTERED_MODEL = "atft_gat_fan"
CHAMPION_ALIAS = "champion"  # the single pointer to the champion: models:/atft_gat_fan@champion
MLFLOW_SCHEMA = "mlflow"  # on PostgreSQL, MLflow's tables and migrations live apart from Dagster's


def postgres_tracking_uri(database_url: str) -> str:
    """MLflow's tracking and registry store on the project's PostgreSQL database, in its own schema."""
    return f"{database_url}{'&' if '?' in database_url else '?'}options=-csearch_path%3D{MLFLOW_SCHEMA}"


@functools.cache
def _prepare_store(tracking_uri: str) -> None:
    """Create MLflow's schema once per process (MLflow creates its tables, not the schema)."""
    if not tracking_uri.startswith("postgresql") or f"search_path%3D{MLFLOW_SCHEMA}" not in tracking_uri:
        return
    import psycopg2

    libpq_url = "postgresql://" + tracking_uri.split("://", 1)[1].split("?")[0]
    conn = psycopg2.connect(libpq_url)
    try:
        conn.autocommit = True
        conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {MLFLOW_SCHEMA}")
    finally:
        conn.close()


PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class MlflowTracking(dg.ConfigurableResource):
    tracking_uri: str
    artifact_dir: str
    experiment_name: str = "atft_dagster"

    def client(self) -> MlflowClient:
        _prepare_store(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri)

    def champion_version(self) -> str | None:
        """The registered version the ``champion`` alias points at; None before the first promotion."""
        try:
            return str(self.client().get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS).version)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # no registered model yet, or no alias on it
            raise

    def promote(self, version: str) -> None:
        self.client().set_registered_model_alias(REGISTERED_MODEL, CHAMPION_ALIAS, version)

    def _experiment_id(self) -> str:
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment_name)
        if exp is not None:
            return exp.experiment_id
        Path(self.artifact_dir).mkdir(parents=True, exist_ok=True)
        return client.create_experiment(
            self.experiment_name, artifact_location=Path(self.artifact_dir).resolve().as_uri()
        )

    @contextmanager
    def run(self, dagster_run_id: str, job_name: str = "") -> Iterator[mlflow.ActiveRun]:
        """Start (or re-enter) the MLflow run of this Dagster run; end it when the block ends."""
        mlflow.set_tracking_uri(self.tracking_uri)
        exp_id = self._experiment_id()
        found = self.client().search_runs(
            [exp_id], filter_string=f"tags.{RUN_TAG} = '{dagster_run_id}'", max_results=1
        )
        kwargs = (
            {"run_id": found[0].info.run_id}
            if found
            else {
                "experiment_id": exp_id,
                "run_name": dagster_run_id,
                "tags": {RUN_TAG: dagster_run_id, "dagster_job": job_name},
            }
        )
        active = mlflow.start_run(**kwargs)
        status = "FAILED"
        try:
            yield active
            status = "FINISHED"
        finally:
            mlflow.end_run(status=status)


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Model logging without MLflow's console chatter (progress bars, 'Successfully registered model' and
    'Created version', which MLflow prints past its logger, a warning that ``predict`` has no type hints):
    the run's own log says what was registered. Errors still raise."""
    logger = logging.getLogger("mlflow")
    level, bar = logger.level, os.environ.get(PROGRESS_BAR)
    stream_on = MLFLOW_LOGGING_STREAM.enabled
    logger.setLevel(logging.WARNING)
    os.environ[PROGRESS_BAR] = "false"
    MLFLOW_LOGGING_STREAM.enabled = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*type hints to the `predict` method")
            yield
    finally:
        logger.setLevel(level)
        MLFLOW_LOGGING_STREAM.enabled = stream_on
        if bar is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = bar
