"""The model_checkpoint asset: trains ATFT-GAT-FAN on the GPU pool, tracked in MLflow."""

import json
import sys

import dagster as dg
import mlflow
import polars as pl
import torch
from pydantic import Field

from atft_dagster.defs.feature_assets import MANIFEST_NAME
from atft_dagster.defs.mlflow_resource import MlflowTracking
from atft_dagster.defs.resources import ProjectPaths
from atft_dagster.features import default_registry, require_manifest
from atft_dagster.model import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import member_seeds
from atft_dagster.training.train import EpochLog, config_folds, train

MODEL_GROUP = "model"
REGISTERED_MODEL = "atft_gat_fan"


class TorchDevice(dg.ConfigurableResource):
    """Where and how torch runs: ``device`` auto | cuda | cpu, ``precision`` fp32 | bf16 (CUDA only),
    ``threads`` for CPU intra-op parallelism (None = torch's default)."""

    device: str = Field("auto", pattern="^(auto|cuda|cpu)$")
    precision: str = Field("fp32", pattern="^(fp32|bf16)$")
    threads: int | None = None

    def resolve(self) -> torch.device:
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("TorchDevice(device='cuda') but no CUDA device is available")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def describe(self, device: torch.device) -> str:
        if device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(device)} ({self.precision})"
        return f"cpu ({torch.get_num_threads()} threads, {self.precision if self.precision == 'fp32' else 'fp32 (bf16 is CUDA-only)'})"


class ModelTrainingConfig(dg.Config, TrainingConfig):
    """All fields of :class:`atft_dagster.model.TrainingConfig`, editable in the launchpad."""


def _graph_config(context: dg.AssetExecutionContext) -> dict:
    event = context.instance.get_latest_materialization_event(dg.AssetKey("stock_graph"))
    md = event.asset_materialization.metadata if event and event.asset_materialization else {}
    cfg = md.get("config")
    return cfg.value if cfg is not None else {}


@dg.asset(
    group_name=MODEL_GROUP,
    pool="gpu",
    kinds={"pytorch", "mlflow"},
    ins={"enriched_features": dg.AssetIn(), "stock_graph": dg.AssetIn()},
    description="Trains ATFT-GAT-FAN (walk-forward split with purge and embargo, early stopping on validation "
    "RankIC) and keeps the best checkpoint. Runs in concurrency pool `gpu`: two trainings never share the GPU. "
    "One MLflow run per Dagster run (params = full resolved config, per-epoch metrics, checkpoint artifact, "
    "registered model version).",
)
def model_checkpoint(
    context: dg.AssetExecutionContext,
    config: ModelTrainingConfig,
    enriched_features: pl.DataFrame,
    stock_graph: pl.DataFrame,
    torch_device: TorchDevice,
    paths: ProjectPaths,
    mlflow_tracking: MlflowTracking,
) -> pl.DataFrame:
    with mlflow_tracking.run(context.run_id, context.job_name) as run:
        return _train_and_log(
            context, config, enriched_features, stock_graph, torch_device, paths, mlflow_tracking, run
        )


def _train_and_log(
    context, config, enriched_features, stock_graph, torch_device, paths, tracking, run
) -> pl.DataFrame:
    cfg = TrainingConfig(**config.model_dump())
    registry = default_registry()
    manifest = json.loads((paths.root / "tables" / MANIFEST_NAME).read_text())
    require_manifest(registry.hash, manifest, "model_checkpoint")
    device = torch_device.resolve()
    data = PanelTensors(
        enriched_features, registry, stock_graph, cfg.horizons, cfg.seq_len, cfg.input_clip, device
    )
    folds = config_folds(data, cfg)
    skipped = len(data.dates) - len(data.usable_dates(cfg.min_stocks_per_date))
    meta = {
        "feature_manifest_hash": registry.hash,
        "graph_config": _graph_config(context),
        "dagster_run_id": context.run_id,
    }
    mlflow.log_params({k: json.dumps(v) if isinstance(v, list) else v for k, v in cfg.model_dump().items()})
    mlflow.set_tags({"feature_manifest_hash": registry.hash, "device": torch_device.describe(device)})
    rows = []
    for split in folds:
        context.log.info(f"fold {split.fold}: {json.dumps(split.describe(data.dates))}")
        for member, seed in enumerate(member_seeds(cfg.seed, cfg.ensemble_seeds)):
            rows.append(
                _train_member(
                    context,
                    cfg.model_copy(update={"seed": seed}),
                    data,
                    split,
                    member,
                    meta,
                    paths,
                    torch_device,
                )
            )
    primary = rows[0]
    mlflow.log_dict(cfg.model_dump(), "config.json")
    version = _register(tracking, run)
    rows = [{**r, "mlflow_model_version": version} for r in rows]
    context.add_output_metadata(
        {
            "parameters": primary["n_parameters"],
            "ensemble": dg.MetadataValue.json(
                {
                    f"fold {f}": [r["seed"] for r in rows if r["fold"] == f]
                    for f in sorted({r["fold"] for r in rows})
                }
            ),
            "epochs_run": primary["epochs_run"],
            "best_epoch": primary["best_epoch"],
            "horizon_epochs": dg.MetadataValue.json(json.loads(primary["horizon_epochs"]) or {}),
            "best_val_rank_ic_primary": primary["best_val_rank_ic"],
            "val_rank_ic": dg.MetadataValue.json(json.loads(primary["val_rank_ic"])),
            "val_ic": dg.MetadataValue.json(json.loads(primary["val_ic"])),
            "seconds_per_epoch": primary["seconds_per_epoch"],
            "samples_per_second": primary["samples_per_second"],
            "device": primary["device"],
            "split": dg.MetadataValue.json(json.loads(primary["split"])),
            "dates_skipped_too_few_stocks": skipped,
            "checkpoint": dg.MetadataValue.path(primary["checkpoint"]),
            "feature_manifest_hash": registry.hash,
            "mlflow_run": dg.MetadataValue.text(
                f"{tracking.tracking_uri} experiment {tracking.experiment_name} run {run.info.run_id}"
            ),
            "mlflow_model_version": f"{REGISTERED_MODEL} v{version}",
        }
    )
    return pl.DataFrame(rows)


def _train_member(context, cfg: TrainingConfig, data, split, member: int, meta, paths, torch_device) -> dict:
    """One seed of one fold; logs every epoch to the Dagster log and MLflow (prefix fold/seed)."""
    out_dir = paths.root / "models" / context.run_id / f"fold_{split.fold}" / f"seed_{cfg.seed}"
    prefix = f"fold{split.fold}_seed{member}_" if (split.fold or member) else ""

    def on_epoch(log: EpochLog) -> None:
        context.log.info(
            f"fold {split.fold} seed {cfg.seed} epoch {log.epoch}: {log.seconds:.1f}s, loss {json.dumps({k: round(v, 4) for k, v in log.loss.items()})}, "
            f"val RankIC {json.dumps({k: round(v, 4) for k, v in log.val_rank_ic.items()})}, pred std {log.prediction_std:.3f}, "
            f"gate {log.gate:.3f}, grad norms {json.dumps({k: round(v, 4) for k, v in log.grad_norms.items()})}"
        )
        metrics = {f"loss_{k}": v for k, v in log.loss.items()}
        metrics.update({f"val_rank_ic_{k}": v for k, v in log.val_rank_ic.items()})
        metrics.update({f"val_ic_{k}": v for k, v in log.val_ic.items()})
        metrics.update({f"grad_norm_{k}": v for k, v in log.grad_norms.items()})
        metrics.update(prediction_std=log.prediction_std, gate=log.gate, seconds=log.seconds, lr=log.lr)
        mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()}, step=log.epoch)

    result = train(
        data,
        cfg,
        split,
        out_dir,
        {**meta, "fold": split.fold, "member": member},
        torch_device.precision,
        on_epoch,
        progress=sys.stderr.isatty(),
    )
    mlflow.log_artifact(result.best_checkpoint, artifact_path=f"checkpoint/fold_{split.fold}/seed_{cfg.seed}")
    return {
        "fold": split.fold,
        "seed": cfg.seed,
        "run_id": context.run_id,
        "checkpoint": result.best_checkpoint,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "best_val_rank_ic": result.best_val_rank_ic,
        "horizon_epochs": json.dumps(result.horizon_epochs),
        "val_rank_ic": json.dumps(result.chosen_validation("val_rank_ic")),
        "val_ic": json.dumps(result.chosen_validation("val_ic")),
        "split": json.dumps(split.describe(data.dates)),
        "test_dates": json.dumps([str(data.dates[t]) for t in split.test]),
        "config": json.dumps(cfg.model_dump()),
        "feature_manifest_hash": meta["feature_manifest_hash"],
        "n_parameters": result.n_parameters,
        "seconds_per_epoch": result.seconds_per_epoch,
        "samples_per_second": result.samples_per_second,
        "device": torch_device.describe(data.device),
        "data_end": str(data.dates[-1]),
    }


def _register(tracking: MlflowTracking, run) -> str:
    """A model version in the MLflow registry whose source is the run's logged checkpoint folder."""
    client = tracking.client()
    if not client.search_registered_models(filter_string=f"name = '{REGISTERED_MODEL}'"):
        client.create_registered_model(REGISTERED_MODEL)
    mv = client.create_model_version(
        REGISTERED_MODEL, source=f"{run.info.artifact_uri}/checkpoint", run_id=run.info.run_id
    )
    return str(mv.version)


ASSETS = [model_checkpoint]
