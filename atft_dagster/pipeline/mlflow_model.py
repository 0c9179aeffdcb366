"""The registered MLflow model: a seed ensemble that ranks one trading day, loadable anywhere with
``mlflow.pyfunc.load_model("models:/atft_gat_fan@champion")``.

Input: ``{"features": enriched_features, "graph": stock_graph, "day": "YYYY-MM-DD"}`` (polars or pandas
frames; the features must cover the day's input window), and optionally ``"timing_dir"``: a folder where
skip timing's pass is kept between calls, so that a caller ranking day after day continues it instead of
reading the whole history each time (as the ``daily_predictions`` asset does). Output: the day's ranking as
a pandas frame, the same rows and values as the ``latest_predictions`` / ``daily_predictions`` assets.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import mlflow.models
import mlflow.pyfunc
import polars as pl

from atft_dagster.features.support import registry_for_frame
from atft_dagster.training.checkpoint import load_checkpoint
from atft_dagster.training.daily import predict_day
from atft_dagster.training.deploy import members_for_day, refit_data_end

MEMBER = "member_{}"
DEPLOYED_MEMBER = "deployed_{}"


def _polars(frame: Any) -> pl.DataFrame | None:
    if frame is None or isinstance(frame, pl.DataFrame):
        return frame
    return pl.from_pandas(frame)


class EnsembleRanker(mlflow.pyfunc.PythonModel):
    """The members' checkpoints are the model's artifacts (``member_0``, ``member_1``, ...), and with a
    deployment refit their deployed checkpoints (``deployed_0``, ...), which rank days from the refit's
    last date on (``training.deploy.members_for_day``), as the assets do."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        def artifacts(prefix: str) -> list[str]:
            keys = [k for k in context.artifacts if k.startswith(prefix)]
            return [context.artifacts[k] for k in sorted(keys, key=lambda k: int(k[len(prefix) :]))]

        self.members, self.deployed = artifacts("member_"), artifacts("deployed_")
        self.data_end = refit_data_end(self.deployed) if self.deployed else None
        self.trained_on = load_checkpoint(Path(self.members[0]), "cpu")["meta"]["feature_manifest_hash"]

    def predict(self, context, model_input, params=None):  # untyped: MLflow reads hints as a schema
        day = model_input["day"]
        day = day if isinstance(day, date) else date.fromisoformat(str(day))
        features = _polars(model_input["features"]).with_columns(pl.col("date").cast(pl.Date))
        graph = _polars(model_input.get("graph"))
        if graph is not None:
            graph = graph.with_columns(pl.col("date").cast(pl.Date))
        registry = registry_for_frame(features, self.trained_on, "the registered model")
        timing_dir = model_input.get("timing_dir")
        timing_dir = None if timing_dir is None else Path(str(timing_dir))
        members, _ = members_for_day(self.members, self.deployed, self.data_end, day)
        preds = predict_day(members, features, registry, graph, day, timing_dir=timing_dir)
        return preds.to_pandas()


# "models from code": MLflow logs this file and loads the model from it, no pickled object
mlflow.models.set_model(EnsembleRanker())


def member_artifacts(checkpoints: list[str], deployed: list[str] | None = None) -> dict[str, str]:
    out = {MEMBER.format(i): path for i, path in enumerate(checkpoints)}
    return out | {DEPLOYED_MEMBER.format(i): path for i, path in enumerate(deployed or [])}


def requirements() -> list[str]:
    """Pinned to what trained the model (the package itself must be installed where it is loaded)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("torch", "polars", "pandas", "numpy", "pyarrow")]
