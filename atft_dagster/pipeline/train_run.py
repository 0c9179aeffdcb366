"""A training run: a seed ensemble per walk-forward fold, as one :class:`TrainedModel` record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import polars as pl

from atft_dagster.model import TrainingConfig
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import FoldWindows, TrainedMember, TrainedModel
from atft_dagster.training.data import PanelTensors
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
    """Train ``cfg.ensemble_seeds`` members on each walk-forward fold of ``cfg``; checkpoints go under
    ``layout.member_dir(training_key, fold, seed)`` and every checkpoint records the manifest hash and the
    graph config. A training interrupted earlier with the same key resumes from its last epoch."""
    key = training_key(cfg, feature_manifest_hash, graph_config, data_fingerprint)
    meta = {
        "feature_manifest_hash": feature_manifest_hash,
        "graph_config": graph_config,
        "dagster_run_id": run_id,
    }
    folds, members = [], []
    for split in config_folds(data, cfg):
        folds.append(FoldWindows.from_described(split.describe(data.dates)))
        for member, seed in enumerate(member_seeds(cfg.seed, cfg.ensemble_seeds)):
            mcfg = cfg.model_copy(update={"seed": seed})
            result = train(
                data,
                mcfg,
                split,
                layout.member_dir(key, split.fold, seed),
                {**meta, "fold": split.fold, "member": member},
                precision,
                lambda log, split=split, member=member, mcfg=mcfg: on_epoch(split, member, mcfg, log),
                progress=progress,
            )
            record = TrainedMember(
                fold=split.fold,
                seed=seed,
                checkpoint=layout.relative(result.best_checkpoint),
                best_epoch=result.best_epoch,
                epochs_run=result.epochs_run,
                best_val_rank_ic=result.best_val_rank_ic,
                horizon_epochs=result.horizon_epochs,
                val_rank_ic=result.chosen_validation("val_rank_ic"),
                val_ic=result.chosen_validation("val_ic"),
                n_parameters=result.n_parameters,
                seconds_per_epoch=result.seconds_per_epoch,
                samples_per_second=result.samples_per_second,
                device=device_name,
                resumed_from_epoch=result.resumed_from_epoch,
            )
            on_member(record, result)
            members.append(record)
    return TrainedModel(
        run_id=run_id,
        training_key=key,
        feature_manifest_hash=feature_manifest_hash,
        data_end=data.dates[-1],
        config=cfg.model_dump(),
        graph_config=graph_config,
        folds=folds,
        members=members,
    )
