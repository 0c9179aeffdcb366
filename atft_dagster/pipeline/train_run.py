"""A training run: a seed ensemble per walk-forward fold, as one :class:`TrainedModel` record. It is planned
(:func:`plan_training`), each (fold, seed) member is trained on its own (:func:`train_member`, one Dagster
step each, in parallel where the executor and the `gpu` pool allow) and the members are assembled
(:func:`assemble`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import (
    FoldWindows,
    MemberTask,
    TrainedMember,
    TrainedModel,
    TrainingPlan,
)
from atft_dagster.training.data import PanelDates, PanelTensors
from atft_dagster.training.deploy import DEPLOYED, SHARED, deployment_refit
from atft_dagster.training.ensemble import member_seeds
from atft_dagster.training.split import Split
from atft_dagster.training.train import EpochLog, TrainResult, config_folds, train

# (split, member index, that member's config, epoch log)
OnEpoch = Callable[[Split, int, TrainingConfig, EpochLog], None]
# (the member's record, its training result)
OnMember = Callable[[TrainedMember, TrainResult], None]


class HorizonMismatch(ValueError):
    pass


def require_horizons(cfg: TrainingConfig, feature_columns: list[str]) -> None:
    """The model's horizons must be among the features' targets (both default to
    :data:`atft_dagster.horizons.HORIZONS`)."""
    missing = [h for h in cfg.horizons if f"target_{h}d" not in feature_columns]
    if missing:
        have = sorted(int(c[7:-1]) for c in feature_columns if c.startswith("target_") and c.endswith("d"))
        raise HorizonMismatch(
            f"the model's horizons {cfg.horizons} include {missing}, but enriched_features has targets for "
            f"{have} only: set the same horizons in enriched_features' and model_checkpoint's config"
        )


def frames_fingerprint(*frames: pl.DataFrame | None) -> str:
    """A short content hash of the training inputs (same polars version: same frames, same hash)."""
    h = hashlib.sha256()
    for f in frames:
        if f is not None:
            h.update(f"{f.columns}{f.height}".encode())
            h.update(f.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


def training_key(
    cfg: TrainingConfig, feature_manifest_hash: str, graph_config: dict[str, Any], data: str
) -> str:
    """What identifies a training: config, inputs manifest, graph config, and the data's fingerprint."""
    ident = {
        "config": cfg.model_dump(),
        "manifest": feature_manifest_hash,
        "graph": graph_config,
        "data": data,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


class PlanMismatch(ValueError):
    pass


def plan_training(
    data: PanelTensors | PanelDates,
    cfg: TrainingConfig,
    run_id: str,
    feature_manifest_hash: str,
    graph_config: dict[str, Any],
    data_fingerprint: str,
) -> TrainingPlan:
    """The folds of ``cfg`` over ``data`` and one task per (fold, seed): ``cfg.ensemble_seeds`` seeds from
    ``cfg.seed`` on every fold."""
    splits = config_folds(data, cfg)
    seeds = member_seeds(cfg.seed, cfg.ensemble_seeds)
    return TrainingPlan(
        run_id=run_id,
        training_key=training_key(cfg, feature_manifest_hash, graph_config, data_fingerprint),
        feature_manifest_hash=feature_manifest_hash,
        data_fingerprint=data_fingerprint,
        data_end=data.dates[-1],
        config=cfg.model_dump(),
        graph_config=graph_config,
        folds=[FoldWindows.from_described(s.describe(data.dates)) for s in splits],
        tasks=[MemberTask(fold=s.fold, member=i, seed=seed) for s in splits for i, seed in enumerate(seeds)],
        dates_skipped=len(data.dates) - len(data.usable_dates(cfg.min_stocks_per_date)),
    )


def train_member(
    data: PanelTensors,
    plan: TrainingPlan,
    task: MemberTask,
    layout: DataLayout,
    device_name: str,
    data_fingerprint: str,
    precision: str = "fp32",
    on_epoch: OnEpoch = lambda *_: None,
    progress: bool = False,
) -> tuple[TrainedMember, TrainResult]:
    """Train one member of ``plan``. Its checkpoints go under ``layout.member_dir(training_key, fold,
    seed)`` with the manifest hash and graph config; a member interrupted earlier resumes from its last
    epoch. Refused when ``data`` is not what the plan was made on (a step retried after the features
    changed)."""
    if data_fingerprint != plan.data_fingerprint:
        raise PlanMismatch(
            f"member {task.key}: the features and graph changed since training {plan.run_id} was planned "
            f"(fingerprint {data_fingerprint}, planned on {plan.data_fingerprint}); start a new run"
        )
    cfg = TrainingConfig(**plan.config)
    split = next((s for s in config_folds(data, cfg) if s.fold == task.fold), None)
    window = next(f for f in plan.folds if f.fold == task.fold)
    if split is None or FoldWindows.from_described(split.describe(data.dates)) != window:
        raise PlanMismatch(f"member {task.key}: fold {task.fold} is not the planned window {window}")
    mcfg = cfg.model_copy(update={"seed": task.seed})
    meta = {
        "feature_manifest_hash": plan.feature_manifest_hash,
        "graph_config": plan.graph_config,
        "dagster_run_id": plan.run_id,
        "fold": task.fold,
        "member": task.member,
    }
    result = train(
        data,
        mcfg,
        split,
        layout.member_dir(plan.training_key, task.fold, task.seed),
        meta,
        precision,
        lambda log: on_epoch(split, task.member, mcfg, log),
        progress=progress,
    )
    deployed, refit = None, None
    if cfg.deployment_refit and task.fold == min(f.fold for f in plan.folds):
        path = Path(result.best_checkpoint).with_name(DEPLOYED)
        shared = layout.fold_dir(plan.training_key, task.fold) / SHARED
        refit = deployment_refit(Path(result.best_checkpoint), data, path, shared)
        deployed = layout.relative(path) if refit is not None else None
    record = TrainedMember(
        fold=task.fold,
        seed=task.seed,
        checkpoint=layout.relative(result.best_checkpoint),
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        best_val_rank_ic=result.best_val_rank_ic,
        horizon_epochs=result.horizon_epochs,
        val_rank_ic=result.chosen_validation("val_rank_ic"),
        val_ic=result.chosen_validation("val_ic"),
        skip_refit=result.skip_refit,
        deployed_checkpoint=deployed,
        deployment_refit=refit,
        n_parameters=result.n_parameters,
        seconds_per_epoch=result.seconds_per_epoch,
        samples_per_second=result.samples_per_second,
        device=device_name,
        resumed_from_epoch=result.resumed_from_epoch,
    )
    return record, result


def assemble(plan: TrainingPlan, members: list[TrainedMember]) -> TrainedModel:
    """The trained model of ``plan``: every planned member, exactly once, whatever order they finished in."""
    got = sorted((m.fold, m.seed) for m in members)
    want = sorted((t.fold, t.seed) for t in plan.tasks)
    if got != want:
        raise PlanMismatch(f"training {plan.run_id}: members (fold, seed) {got} are not the planned {want}")
    return TrainedModel(
        run_id=plan.run_id,
        training_key=plan.training_key,
        feature_manifest_hash=plan.feature_manifest_hash,
        data_end=plan.data_end,
        config=plan.config,
        graph_config=plan.graph_config,
        folds=plan.folds,
        members=sorted(members, key=lambda m: (m.fold, m.seed)),
    )


def train_run(
    data: PanelTensors,
    cfg: TrainingConfig,
    run_id: str,
    layout: DataLayout,
    feature_manifest_hash: str,
    graph_config: dict[str, Any],
    device_name: str,
    data_fingerprint: str,
    precision: str = "fp32",
    on_epoch: OnEpoch = lambda *_: None,
    on_member: OnMember = lambda *_: None,
    progress: bool = False,
) -> TrainedModel:
    """Plan, train every member in turn, assemble: what the Dagster asset does with one step per member."""
    plan = plan_training(data, cfg, run_id, feature_manifest_hash, graph_config, data_fingerprint)
    members = []
    for task in plan.tasks:
        record, result = train_member(
            data, plan, task, layout, device_name, data_fingerprint, precision, on_epoch, progress
        )
        on_member(record, result)
        members.append(record)
    return assemble(plan, members)
