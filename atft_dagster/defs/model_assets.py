"""The model_checkpoint asset: a graph of plan -> one training step per (fold, seed) member on the GPU pool
-> register, tracked in one MLflow run."""

import json
import sys

import dagster as dg
import mlflow
import polars as pl
import torch
from pydantic import Field

from atft_dagster.defs.executors import gpu_step_tags
from atft_dagster.defs.mlflow_resource import REGISTERED_MODEL, MlflowTracking, quiet_mlflow
from atft_dagster.defs.resources import ProjectPaths
from atft_dagster.defs.worker_watch import stop_if_run_worker_dies
from atft_dagster.features.support import registry_for_frame
from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline import mlflow_model
from atft_dagster.pipeline.inputs import feature_registry
from atft_dagster.pipeline.records import MemberTask, TrainedMember, TrainedModel, TrainingPlan
from atft_dagster.pipeline.train_run import (
    assemble,
    frames_fingerprint,
    plan_training,
    require_horizons,
)
from atft_dagster.pipeline.train_run import train_member as train_member_core
from atft_dagster.training.data import PanelDates, PanelTensors
from atft_dagster.training.memory import keep_freed_memory
from atft_dagster.training.split import Split
from atft_dagster.training.train import EpochLog, native_cpu_bf16

MODEL_GROUP = "model"


class TorchDevice(dg.ConfigurableResource):
    """Where and how torch runs: ``device`` auto | cuda | cpu, ``precision`` fp32 | bf16, ``threads`` for
    CPU intra-op parallelism (None = torch's default), ``keep_freed_memory`` on a CPU (training/memory.py)."""

    device: str = Field("auto", pattern="^(auto|cuda|cpu)$")
    precision: str = Field(
        "fp32",
        pattern="^(fp32|bf16)$",
        description="bf16: autocast to bfloat16 on a GPU or a CPU. A CPU with AVX512-BF16 or AMX runs it "
        "natively (a 1000-stock epoch on 2 such cores 1.1-1.25x faster, the same validation RankIC within the "
        "seed spread: docs/benchmarks.md); elsewhere it is emulated and slower than fp32.",
    )
    threads: int | None = None
    keep_freed_memory: bool = Field(
        True,
        description="On a CPU, the C allocator keeps freed memory for reuse instead of mapping fresh pages for "
        "every large tensor: a 1000-stock training epoch about 10 % faster on 2 cores; the process keeps its peak memory.",
    )

    def resolve(self) -> torch.device:
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("TorchDevice(device='cuda') but no CUDA device is available")
        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(self.device)
        if device.type == "cpu" and self.keep_freed_memory:
            keep_freed_memory()
        return device

    def describe(self, device: torch.device) -> str:
        if device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(device)} ({self.precision})"
        precision = (
            self.precision
            if self.precision == "fp32" or native_cpu_bf16()
            else "bf16, emulated: no bf16 instructions found"
        )
        return f"cpu ({torch.get_num_threads()} threads, {precision})"


class ModelTrainingConfig(dg.Config, TrainingConfig):
    """All fields of :class:`atft_dagster.model.TrainingConfig`, editable in the launchpad."""


@dg.config_mapping(config_schema=ModelTrainingConfig.to_config_schema())
def _training_config(config: dict) -> dict:
    """The asset's config (``ops.model_checkpoint.config``, as for any asset) is the plan step's. Passed
    on as is: its constraints are checked at launch (defs/launch.py) and when the plan step builds it."""
    return {"plan": {"config": config}}


def _inputs(features: pl.DataFrame, layout, cfg: TrainingConfig):
    """The manifest's registry, after checking the features table is the manifest's and has the model's
    horizons."""
    registry = feature_registry(layout)  # the manifest's features; refused if the code defines them otherwise
    registry_for_frame(features, registry.hash, "model_checkpoint")  # the table is the manifest's
    require_horizons(cfg, features.columns)
    return registry


@dg.op(
    out={
        "plan": dg.Out(TrainingPlan, description="Identity, folds and members of the training."),
        "tasks": dg.DynamicOut(MemberTask, description="One per (fold, seed): a parallel step each."),
    },
    description="Checks the inputs, plans the folds and members, and opens the run's MLflow run.",
)
def plan(
    context: dg.OpExecutionContext,
    config: ModelTrainingConfig,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
):
    cfg, layout = TrainingConfig(**config.model_dump()), paths.layout
    registry = _inputs(enriched_features, layout, cfg)
    graph_config = json.loads(layout.graph_config.read_text()) if layout.graph_config.exists() else {}
    planned = plan_training(
        PanelDates.of(enriched_features, cfg.seq_len),  # no tensors: each member step builds its own
        cfg,
        context.run_id,
        registry.hash,
        graph_config,
        frames_fingerprint(enriched_features, stock_graph),
    )
    with mlflow_tracking.run(
        context.run_id, context.job_name
    ):  # created here, before parallel members look it up
        mlflow.log_params({k: json.dumps(v) if isinstance(v, list) else v for k, v in planned.config.items()})
        mlflow.set_tags({"feature_manifest_hash": registry.hash})
        mlflow.log_dict(planned.config, "config.json")
    context.log.info(
        f"training {planned.training_key}: {len(planned.folds)} fold(s) x {cfg.ensemble_seeds} seed(s) = "
        f"{len(planned.tasks)} member step(s)"
    )
    yield dg.Output(planned, "plan")
    for task in planned.tasks:
        yield dg.DynamicOutput(task, mapping_key=task.key, output_name="tasks")


@dg.op(
    pool="gpu",
    tags=gpu_step_tags(),
    out=dg.Out(TrainedMember),
    description="Trains one (fold, seed) member with early stopping, on the GPU pool; resumes an "
    "interrupted member from its last epoch.",
)
def train_member(
    context: dg.OpExecutionContext,
    task: MemberTask,
    plan: TrainingPlan,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> TrainedMember:
    cfg, layout = TrainingConfig(**plan.config), paths.layout
    registry = _inputs(enriched_features, layout, cfg)
    device = torch_device.resolve()
    data = PanelTensors.for_model(enriched_features, registry, stock_graph, cfg, device)
    with (
        stop_if_run_worker_dies(context.log.error),  # a killed run worker stops the training too
        mlflow_tracking.run(plan.run_id, context.job_name),
    ):
        record, result = train_member_core(
            data,
            plan,
            task,
            layout,
            torch_device.describe(device),
            frames_fingerprint(enriched_features, stock_graph),
            torch_device.precision,
            on_epoch=lambda split, member, mcfg, log: _log_epoch(context, split, member, mcfg, log),
            progress=sys.stderr.isatty(),
        )
        mlflow.log_artifact(
            result.best_checkpoint, artifact_path=f"checkpoint/fold_{record.fold}/seed_{record.seed}"
        )
    context.add_output_metadata(
        {
            "best_epoch": record.best_epoch,
            "best_val_rank_ic_primary": record.best_val_rank_ic,
            "seconds_per_epoch": record.seconds_per_epoch,
            "device": record.device,
            "checkpoint": dg.MetadataValue.path(record.checkpoint),
        }
    )
    return record


@dg.op(
    out=dg.Out(TrainedModel),
    description="Gathers every member into the TrainedModel record and registers fold 0's ensemble in MLflow.",
)
def register(
    context: dg.OpExecutionContext,
    plan: TrainingPlan,
    members: list[TrainedMember],
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> TrainedModel:
    model = assemble(plan, members)
    with mlflow_tracking.run(plan.run_id, context.job_name) as run:  # across re-executions
        deployed = [str(paths.layout.resolve(c)) for c in model.deployed_checkpoints() or []]
        version = _register(model.trained_folds(paths.layout)[0].checkpoints, deployed)
    model = model.model_copy(update={"mlflow_model_version": version})
    context.add_output_metadata(_metadata(model, plan.dates_skipped, mlflow_tracking, run))
    return model


@dg.graph_asset(
    config=_training_config,
    group_name=MODEL_GROUP,
    kinds={"pytorch", "mlflow"},
    description="Trains ATFT-GAT-FAN (walk-forward split with purge and embargo, early stopping on validation "
    "RankIC) and keeps the best checkpoint of every member. One step per (fold, seed) member: the "
    "multiprocess executor runs them in parallel up to the `gpu` pool's limit (two trainings never share a "
    "GPU slot). One MLflow run per Dagster run (params = full resolved config, per-epoch metrics, "
    "checkpoint artifacts, registered model version). Output: a TrainedModel record (JSON).",
)
def model_checkpoint(enriched_features: pl.DataFrame, stock_graph: pl.DataFrame) -> TrainedModel:
    planned, tasks = plan(enriched_features, stock_graph)
    members = tasks.map(lambda task: train_member(task, planned, enriched_features, stock_graph))
    return register(planned, members.collect())


def _log_epoch(context, split: Split, member: int, cfg: TrainingConfig, log: EpochLog) -> None:
    """One epoch of one member to the Dagster log and MLflow (metrics prefixed fold/seed after the first)."""

    def fmt(d: dict) -> str:
        return json.dumps({k: round(v, 4) for k, v in d.items()})

    context.log.info(
        f"fold {split.fold} seed {cfg.seed} epoch {log.epoch}: {log.seconds:.1f}s, loss {fmt(log.loss)}, "
        f"val RankIC {fmt(log.val_rank_ic)}, pred std {log.prediction_std:.3f}, "
        f"gate {log.gate:.3f}, grad norms {fmt(log.grad_norms)}"
    )
    prefix = f"fold{split.fold}_seed{member}_" if (split.fold or member) else ""
    metrics = {f"loss_{k}": v for k, v in log.loss.items()}
    metrics.update({f"val_rank_ic_{k}": v for k, v in log.val_rank_ic.items()})
    metrics.update({f"val_ic_{k}": v for k, v in log.val_ic.items()})
    metrics.update({f"grad_norm_{k}": v for k, v in log.grad_norms.items()})
    metrics.update(prediction_std=log.prediction_std, gate=log.gate, seconds=log.seconds, lr=log.lr)
    mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()}, step=log.epoch)


def _metadata(model: TrainedModel, skipped: int, tracking: MlflowTracking, run) -> dict:
    p: TrainedMember = model.primary
    return {
        "parameters": p.n_parameters,
        "ensemble": dg.MetadataValue.json(
            {f"fold {f.fold}": [m.seed for m in model.fold_members(f.fold)] for f in model.folds}
        ),
        "epochs_run": p.epochs_run,
        "resumed_from_epoch": p.resumed_from_epoch if p.resumed_from_epoch is not None else -1,
        "training_key": model.training_key,
        "best_epoch": p.best_epoch,
        "horizon_epochs": dg.MetadataValue.json(p.horizon_epochs or {}),
        "best_val_rank_ic_primary": p.best_val_rank_ic,
        "val_rank_ic": dg.MetadataValue.json(p.val_rank_ic),
        "val_ic": dg.MetadataValue.json(p.val_ic),
        "skip_refit": dg.MetadataValue.json(p.skip_refit or {}),
        "deployment_refit": dg.MetadataValue.json(p.deployment_refit or {}),
        "seconds_per_epoch": p.seconds_per_epoch,
        "samples_per_second": p.samples_per_second,
        "device": p.device,
        "split": dg.MetadataValue.json(model.folds[0].model_dump(mode="json")),
        "data_end": str(model.data_end),
        "dates_skipped_too_few_stocks": skipped,
        "checkpoint": dg.MetadataValue.path(p.checkpoint),
        "feature_manifest_hash": model.feature_manifest_hash,
        "mlflow_run": dg.MetadataValue.text(
            f"{tracking.tracking_uri} experiment {tracking.experiment_name} run {run.info.run_id}"
        ),
        "mlflow_model_version": f"{REGISTERED_MODEL} v{model.mlflow_model_version}",
    }


def _register(checkpoints: tuple[str, ...], deployed: list[str]) -> str:
    """Log fold 0's seed ensemble (and its deployed checkpoints) as a pyfunc model
    (``atft_dagster.pipeline.mlflow_model``) in the active run and register it:
    ``models:/atft_gat_fan/<version>`` loads and ranks a day."""
    with quiet_mlflow():
        info = mlflow.pyfunc.log_model(
            name="ranker",
            python_model=mlflow_model.__file__,
            artifacts=mlflow_model.member_artifacts(list(checkpoints), deployed),
            pip_requirements=mlflow_model.requirements(),
        )
        return str(mlflow.register_model(info.model_uri, REGISTERED_MODEL).version)
