"""Config validation at launch. Dagster checks a run's config against the schema (names and types) when it
is launched, but a `Config`'s pydantic constraints and validators (``epochs`` ≥ 1, ``primary_horizon`` among
``horizons``, ``hidden`` divisible by ``attn_heads``) run only when the step builds it, steps later. The
run coordinator below builds every asset config of a run, and checks the features' horizons against the
model's, when the run is submitted (UI, CLI, sensors, schedules); a run that fails is marked failed before
any step starts, with every problem listed, so nothing is written."""

from __future__ import annotations

from typing import Any

from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from pydantic import BaseModel, ValidationError


def _config_classes() -> dict[str, type[BaseModel]]:
    """Asset name -> its run config class (imported here: the asset modules load torch and MLflow)."""
    from atft_dagster.defs.evaluation_assets import ChampionConfig, EvaluationConfig
    from atft_dagster.defs.feature_assets import FeaturesConfig
    from atft_dagster.defs.graph_assets import StockGraphConfig
    from atft_dagster.defs.model_assets import ModelTrainingConfig

    return {
        "enriched_features": FeaturesConfig,
        "stock_graph": StockGraphConfig,
        "model_checkpoint": ModelTrainingConfig,
        "evaluation_report": EvaluationConfig,
        "champion_model": ChampionConfig,
    }


def run_config_problems(run_config: dict[str, Any] | None, assets: set[str] | None = None) -> list[str]:
    """Every problem of a run config's asset configs, each naming its path (``ops.<asset>.config.<field>``).
    The model's horizons are checked against the features' when the run materialises both (``assets``;
    unknown: when the config sets both)."""
    ops = (run_config or {}).get("ops") or {}
    built: dict[str, BaseModel] = {}
    problems: list[str] = []
    for name, cls in _config_classes().items():
        given = (ops.get(name) or {}).get("config") or {}
        try:
            built[name] = cls(**given)
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(str(p) for p in e["loc"])
                problems.append(f"ops.{name}.config{'.' + where if where else ''}: {e['msg']}")
    features, model = built.get("enriched_features"), built.get("model_checkpoint")
    both = {"enriched_features", "model_checkpoint"}
    if assets is None:
        assets = set(ops) if both <= set(ops) else set()
    if features is not None and model is not None and both <= assets:
        missing = sorted(set(model.horizons) - set(features.horizons))
        if missing:
            problems.append(
                f"ops.model_checkpoint.config.horizons: {missing} have no target in "
                f"ops.enriched_features.config.horizons {list(features.horizons)}"
            )
    return problems


class ValidatingRunCoordinator(QueuedRunCoordinator):
    """The queued run coordinator, refusing a run whose asset configs are invalid (it is reported failed,
    naming each problem, before it is queued)."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if run.status != DagsterRunStatus.NOT_STARTED:
            return super().submit_run(context)
        problems = run_config_problems(run.run_config, _run_assets(run))
        if problems:
            self._instance.report_run_failed(run, "Invalid config, refused at launch: " + "; ".join(problems))
            return self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(context)


def _run_assets(run: DagsterRun) -> set[str] | None:
    """The assets a run materialises: its selection, else its job's (None when the job is not ours)."""
    if run.asset_selection:
        return {k.to_user_string() for k in run.asset_selection}
    from dagster import DagsterInvariantViolationError

    from atft_dagster.definitions import defs

    try:
        job = defs.resolve_job_def(run.job_name)
    except (DagsterInvariantViolationError, KeyError, ValueError):
        return None
    return job_assets(job)


def job_assets(job: Any) -> set[str]:
    """The names of the assets a job definition materialises."""
    return {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
