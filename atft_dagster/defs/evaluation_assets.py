"""evaluation_report, champion_model, daily_predictions and latest_predictions: each loads its inputs,
calls one function of :mod:`atft_dagster.pipeline`, writes the result and attaches metadata."""

from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import polars as pl
from pydantic import Field

from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.model_assets import TorchDevice
from atft_dagster.defs.partitions import partition_date, trading_days_partitions
from atft_dagster.defs.resources import MarketSourceResource, ProjectPaths
from atft_dagster.defs.worker_watch import stop_if_run_worker_dies
from atft_dagster.evaluation.report import embed_png
from atft_dagster.evaluation.selection import compare_on_selection
from atft_dagster.features.support import registry_for_frame
from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline.champion import (
    ChampionRecordMissing,
    decide_champion,
    load_champion,
    require_version,
)
from atft_dagster.pipeline.evaluate import EvaluationResult, EvaluationSettings, evaluate_run
from atft_dagster.pipeline.inputs import feature_manifest, feature_registry, inputs_md
from atft_dagster.pipeline.rank import rank_day
from atft_dagster.pipeline.records import ChampionState, TrainedModel
from atft_dagster.storage import write_parquet_atomic, write_text_atomic
from atft_dagster.training.data import PanelTensors

EVAL_GROUP = "evaluation"


class EvaluationConfig(dg.Config, EvaluationSettings):
    """Every field of :class:`atft_dagster.pipeline.evaluate.EvaluationSettings` (the baselines' grids)."""


def _panel(
    model: TrainedModel, features: pl.DataFrame, graph: pl.DataFrame, torch_device: TorchDevice
) -> PanelTensors:
    cfg = TrainingConfig.from_recorded(model.config)
    registry = registry_for_frame(features, model.feature_manifest_hash, "the trained model")
    return PanelTensors.for_model(features, registry, graph, cfg, torch_device.resolve())


@dg.asset(
    group_name=EVAL_GROUP,
    pool="gpu",
    kinds={"polars", "mlflow"},
    description="Per horizon and window, for the seed-ensemble model, one member alone and the baselines (graph "
    "block off, the linear graph model, ridge, LightGBM, momentum, reversal, and the oracle on the synthetic "
    "market), on exactly the same days and stocks: IC, RankIC, ICIR, Newey-West t, hit rate, quintile "
    "long-short, JPX Sharpe, deciles. The test window (all walk-forward folds pooled) is reported only, with "
    "every fitted model also scored as deployed at the test start (refitted through the selection window); the "
    "selection window is what champion promotion reads. Plots and a Markdown report in the data directory's "
    "reports folder, in a folder named after the run id.",
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    model_checkpoint: TrainedModel,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
    market_source: MarketSourceResource,
) -> pl.DataFrame:
    out_dir = paths.layout.report_dir(context.run_id)
    with stop_if_run_worker_dies(context.log.error):  # a killed run worker stops this step too
        result = evaluate_run(
            model_checkpoint,
            paths.layout,
            _panel(model_checkpoint, enriched_features, stock_graph, torch_device),
            enriched_features,
            feature_registry(paths.layout),
            EvaluationSettings(**{k: getattr(config, k) for k in EvaluationSettings.model_fields}),
            market_source.oracle,
            out_dir,
            torch_device.precision,
            context.log.info,
            inputs_md(feature_manifest(paths.layout)),
        )
    report_path = out_dir / "report.md"
    write_text_atomic(result.markdown, report_path)
    summary = result.summary(context.run_id, paths.layout.relative(report_path))
    write_text_atomic(summary.to_json(), out_dir / "summary.json")
    write_parquet_atomic(result.test_predictions, out_dir / "test_predictions.parquet")
    with mlflow_tracking.run(context.run_id, context.job_name):
        mlflow.log_metrics(_mlflow_metrics(result.table))
        mlflow.log_artifacts(str(out_dir), artifact_path="report")
    context.add_output_metadata(_report_metadata(result, report_path))
    context.log.info(f"evaluation report: {report_path}")
    return result.table.with_columns(pl.lit(context.run_id).alias("run_id"))


def _mlflow_metrics(table: pl.DataFrame) -> dict[str, float]:
    return {
        f"{r['window']}_{m}_{r['horizon']}d_{r['model']}": r[m]
        for r in table.iter_rows(named=True)
        for m in (
            "rank_ic",
            "ic",
            "ls_sharpe",
            "jpx_sharpe",
            "oracle_agreement",
            "turbulent_rank_ic",
            "other_rank_ic",
        )
        if r.get(m) is not None and r[m] == r[m]
    }


def _report_metadata(result: EvaluationResult, report_path: Path) -> dict:
    fraction = result.oracle_fraction
    return {
        "report": dg.MetadataValue.path(str(report_path)),
        "model_rank_ic_primary": result.score("test"),
        "model_rank_ic_primary_window": "test",
        "selection_rank_ic_primary": result.score("selection"),
        "oracle_fraction": fraction if fraction is not None else float("nan"),
        "oracle_agreement": result.oracle_agreement if result.oracle_agreement is not None else float("nan"),
        "test_days": result.test_days,
        "folds": result.folds,
        "ensemble_seeds": result.ensemble_seeds,
        "report_primary": _horizon_md(result, result.primary_horizon),
        # every horizon's table and plots on the asset's page, not only the primary one's
        **{f"report_{h}d": _horizon_md(result, h) for h in sorted(result.test_tables)},
    }


def _horizon_md(result: EvaluationResult, h: int) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        result.test_tables[h] + "\n" + "\n".join(embed_png(p) for p in result.test_plots[h])
    )


class ChampionConfig(dg.Config):
    margin: float = Field(
        0.0, description="The new model must beat the champion's primary metric by more than this."
    )
    metric: str = Field("rank_ic", description="Primary metric (a column of the evaluation report).")


@dg.asset(
    group_name=EVAL_GROUP,
    kinds={"mlflow"},
    deps=["evaluation_report"],
    description="Promotes the new seed ensemble only if it beats the current champion on the new run's selection "
    "windows (mean over folds; test-window labels are removed before scoring) by the configured margin; the first "
    "model becomes champion. The MLflow registry alias `champion` (models:/atft_gat_fan@champion) is the one "
    "pointer to the champion: a promotion writes the version's record (data/champions/v{version}.json) and then "
    "moves the alias; predictions and the retrain sensor follow the alias. Output: a ChampionState record (JSON).",
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: ChampionConfig,
    model_checkpoint: TrainedModel,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> ChampionState:
    cfg = TrainingConfig.from_recorded(model_checkpoint.config)

    def compare(candidate, champion):
        data = _panel(model_checkpoint, enriched_features, stock_graph, torch_device)
        return compare_on_selection(
            candidate,
            champion,
            data,
            cfg.primary_horizon,
            config.metric,
            cfg.min_stocks_per_date,
            config.margin,
            torch_device.precision,
        )

    layout = paths.layout
    champion = load_champion(layout, mlflow_tracking.champion_version())
    d = decide_champion(model_checkpoint, champion, layout, compare, config.metric)
    if d.promote:
        version = require_version(d.state)
        write_text_atomic(d.state.to_json(), layout.champion_record(version))  # the record, then the pointer
        mlflow_tracking.promote(version)
    nan = float("nan")
    context.add_output_metadata(
        {
            "decision": d.decision,
            "window": "selection",
            "new_score": d.candidate_score if d.candidate_score is not None else nan,
            "champion_score": d.champion_score if d.champion_score is not None else nan,
            "champion_checkpoints": dg.MetadataValue.json(d.state.checkpoints),
            "data_end": str(d.state.data_end),
        }
    )
    context.log.info(f"champion: {d.decision}")
    return d.state


def _predict(
    context: dg.AssetExecutionContext,
    days: list[date],
    champion: ChampionState,
    features: pl.DataFrame,
    graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
) -> pl.DataFrame:
    """Rank each day, write its CSV, and describe them in the output's metadata."""
    frames, csvs, timing, checkpoints = [], [], "", ""
    for day in days:
        ranking = rank_day(
            champion,
            paths.layout,
            features,
            registry_for_frame(features, champion.feature_manifest_hash, "the champion"),
            graph,
            day,
            torch_device.resolve(),
            torch_device.precision,
        )
        csvs.append(paths.layout.predictions_csv(day))
        write_text_atomic(ranking.csv, csvs[-1])
        frames.append(ranking.predictions)
        notes = "; ".join(n for n in (ranking.checkpoints, ranking.timing) if n)
        context.log.info(f"predictions for {day}: {csvs[-1]}" + (f" ({notes})" if notes else ""))
        timing, checkpoints = ranking.timing, ranking.checkpoints
    context.add_output_metadata(
        {
            "date": str(days[-1]) if len(days) == 1 else f"{days[0]} .. {days[-1]}",
            "stocks": frames[-1].height,
            "champion": dg.MetadataValue.json(champion.checkpoints),
            "csv": dg.MetadataValue.path(str(csvs[-1])),
            "skip_timing": timing or "off",
            "checkpoints": checkpoints,
        }
    )
    return pl.concat(frames)


@dg.asset(
    group_name=EVAL_GROUP,
    partitions_def=trading_days_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"polars", "parquet", "csv"},
    deps=["champion_model"],
    description="For each partition's trading date, the champion's scores for every stock trading that day: point "
    "prediction per horizon, quantiles and cross-sectional rank (0 = best). Parquet plus a JPX-style CSV "
    "(Date, SecuritiesCode, Rank) in the data directory's predictions folder. Same date and champion => "
    "byte-identical files. A backfill of a date range runs as one step.",
)
def daily_predictions(
    context: dg.AssetExecutionContext,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> pl.DataFrame:
    days = [partition_date(k) for k in context.partition_keys]
    champion = _champion(paths, mlflow_tracking)
    return _predict(context, days, champion, enriched_features, stock_graph, torch_device, paths)


@dg.asset(
    group_name=EVAL_GROUP,
    kinds={"polars", "parquet", "csv"},
    deps=["champion_model"],
    description="The champion's predictions for the latest trading day with features (what `retrain` "
    "ends with); the same files as that day's daily_predictions partition.",
)
def latest_predictions(
    context: dg.AssetExecutionContext,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> pl.DataFrame:
    day = enriched_features["date"].max()
    champion = _champion(paths, mlflow_tracking)
    return _predict(context, [day], champion, enriched_features, stock_graph, torch_device, paths)


def _champion(paths: ProjectPaths, mlflow_tracking: MlflowTracking) -> ChampionState:
    """The model version the ``champion`` alias points at (moving the alias by hand moves predictions)."""
    champion = load_champion(paths.layout, mlflow_tracking.champion_version())
    if champion is None:
        raise ChampionRecordMissing(
            "no champion yet: run `retrain` (or point the MLflow alias 'champion' at a version)"
        )
    return champion
