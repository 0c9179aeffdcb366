"""Typed records that assets hand each other: each has a JSON schema (``json_schema``), ``to_json`` and
``from_json``. Paths inside records are relative to the data directory (:class:`DataLayout`)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from atft_dagster.evaluation.selection import TrainedFold
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.training.deploy import members_for_day


class Record(BaseModel):
    """Base of the run records: strict fields, JSON round trip."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.model_validate_json(text)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()


class FoldWindows(Record):
    """One walk-forward fold's windows as (first, last) trading dates; an empty window is None."""

    fold: int
    gap_days: int
    train: tuple[date, date]
    val: tuple[date, date]
    selection: tuple[date, date] | None
    test: tuple[date, date] | None
    sizes: list[int]

    @classmethod
    def from_described(cls, d: dict[str, Any]) -> FoldWindows:
        """From :meth:`atft_dagster.training.split.Split.describe`."""
        return cls(**{k: (v or None) if isinstance(v, list) and k != "sizes" else v for k, v in d.items()})


class TrainedMember(Record):
    """One seed of one fold: where its best checkpoint is and how its training went."""

    fold: int
    seed: int
    checkpoint: str = Field(description="Best checkpoint, relative to the data directory.")
    best_epoch: int
    epochs_run: int
    best_val_rank_ic: float
    horizon_epochs: dict[str, int | None] | None = Field(
        description="Per horizon, the epoch its predictions come from (-1: the ridge start); None: one epoch."
    )
    val_rank_ic: dict[str, float] = Field(
        description="Per horizon, the validation RankIC of the state it was chosen by (before any refit)."
    )
    val_ic: dict[str, float]
    skip_refit: dict[str, Any] | None = Field(
        None,
        description="skip_refit_through_validation: the horizons whose ridge start was refitted, on what dates.",
    )
    deployed_checkpoint: str | None = Field(
        None,
        description="deployment_refit: the checkpoint that ranks days from the data's last date on, relative "
        "to the data directory; None: the evaluated one does (no horizon kept the ridge start, or not fold 0).",
    )
    deployment_refit: dict[str, Any] | None = Field(
        None, description="deployment_refit: the horizons refitted, on what dates, with what penalty."
    )
    n_parameters: int
    seconds_per_epoch: float
    samples_per_second: float
    device: str
    resumed_from_epoch: int | None = Field(None, description="Set when an interrupted training was resumed.")


class MemberTask(Record):
    """One member to train: a seed on a walk-forward fold (``member`` is its index in the fold's ensemble)."""

    fold: int
    member: int
    seed: int

    @property
    def key(self) -> str:
        """A name for the member, unique within a training (a Dagster mapping key)."""
        return f"fold{self.fold}_seed{self.seed}"


class TrainingPlan(Record):
    """What a training will do before any member trains: its identity, folds and members. Each member is
    trained against the plan (in any order, in parallel) and the plan assembles them into a TrainedModel."""

    run_id: str
    training_key: str = Field(description="Config + data + graph identity; names the checkpoint folder.")
    feature_manifest_hash: str
    data_fingerprint: str = Field(description="Content hash of the features and graph the plan was made on.")
    data_end: date
    config: dict[str, Any] = Field(description="The full resolved TrainingConfig.")
    graph_config: dict[str, Any]
    folds: list[FoldWindows]
    tasks: list[MemberTask]
    dates_skipped: int = Field(description="Dates left out for having fewer than min_stocks_per_date stocks.")


class TrainedModel(Record):
    """What one training run produced: a seed ensemble per walk-forward fold, and what it was trained on."""

    run_id: str
    training_key: str = Field(description="Config + data + graph identity; names the checkpoint folder.")
    feature_manifest_hash: str
    data_end: date = Field(
        description="Last trading day of the data the run saw (the retrain policy counts from it)."
    )
    config: dict[str, Any] = Field(description="The full resolved TrainingConfig.")
    graph_config: dict[str, Any] = Field(description="The config the stock graph was built with.")
    folds: list[FoldWindows]
    members: list[TrainedMember]
    mlflow_model_version: str | None = None

    def fold_members(self, fold: int) -> list[TrainedMember]:
        return sorted((m for m in self.members if m.fold == fold), key=lambda m: m.seed)

    def deployed_checkpoints(self) -> list[str] | None:
        """Fold 0's members as they rank new days (a member with nothing refitted stays as evaluated);
        None when no member has a deployment refit."""
        members = self.fold_members(min(f.fold for f in self.folds))
        if not any(m.deployed_checkpoint for m in members):
            return None
        return [m.deployed_checkpoint or m.checkpoint for m in members]

    def trained_folds(self, layout: DataLayout) -> list[TrainedFold]:
        """Per fold (fold 0 first): its members' checkpoints (absolute) and window dates."""
        out = []
        for f in sorted(self.folds, key=lambda f: f.fold):
            if f.selection is None or f.test is None:
                raise ValueError(f"run {self.run_id} fold {f.fold} has no selection or test window")
            out.append(
                TrainedFold(
                    f.fold,
                    tuple(str(layout.resolve(m.checkpoint)) for m in self.fold_members(f.fold)),
                    f.train[1],
                    f.selection,
                    f.test,
                )
            )
        return out

    @property
    def primary(self) -> TrainedMember:
        """Fold 0's first seed: the member whose figures the run's metadata shows."""
        return self.fold_members(min(f.fold for f in self.folds))[0]


class ChampionState(Record):
    """The champion: the run whose seed ensembles predict, what it was trained on, and how it won."""

    run_id: str
    folds: list[dict[str, Any]] | None = Field(
        description="TrainedFold.as_dict per fold, checkpoints relative to the data directory; None for a "
        "champion written before selection windows were recorded."
    )
    checkpoints: list[str] = Field(
        description="Fold 0's members (these predict), relative to the data directory."
    )
    metric: str | None = None
    selection_score: float | None = None
    feature_manifest_hash: str | None = None
    mlflow_model_version: str | None = None
    data_end: date | None = None
    decision: str = ""
    deployed_checkpoints: list[str] | None = Field(
        None,
        description="Fold 0's members after the deployment refit (relative to the data directory), one per "
        "checkpoint; they rank days from data_end on. None: the evaluated checkpoints rank every day.",
    )

    @classmethod
    def from_model(
        cls, model: TrainedModel, layout: DataLayout, metric: str, score: float | None, decision: str
    ) -> ChampionState:
        folds = [
            {**f.as_dict(), "checkpoints": [layout.relative(c) for c in f.checkpoints]}
            for f in model.trained_folds(layout)
        ]
        return cls(
            run_id=model.run_id,
            folds=folds,
            checkpoints=list(folds[0]["checkpoints"]),
            metric=metric,
            selection_score=score,
            feature_manifest_hash=model.feature_manifest_hash,
            mlflow_model_version=model.mlflow_model_version,
            data_end=model.data_end,
            decision=decision,
            deployed_checkpoints=model.deployed_checkpoints(),
        )

    @classmethod
    def from_json(cls, text: str) -> ChampionState:
        """Also reads the files earlier versions wrote (extra fields ignored, absent ones None)."""
        raw = json.loads(text)
        known = {k: v for k, v in raw.items() if k in cls.model_fields}
        known.setdefault("folds", None)
        return cls.model_validate(known)

    def trained_folds(self, layout: DataLayout) -> list[TrainedFold]:
        return [
            TrainedFold.from_dict({**f, "checkpoints": [str(layout.resolve(c)) for c in f["checkpoints"]]})
            for f in self.folds or []
        ]

    def member_paths(self, layout: DataLayout) -> list[str]:
        return [str(layout.resolve(c)) for c in self.checkpoints]

    def members_for(self, layout: DataLayout, day: date) -> tuple[list[str], str]:
        """The checkpoints that rank ``day`` and why (``training.deploy.members_for_day``)."""
        deployed = [str(layout.resolve(c)) for c in self.deployed_checkpoints or []]
        return members_for_day(self.member_paths(layout), deployed, self.data_end, day)


class EvaluationSummary(Record):
    """What an evaluation found, without the frames: every (window, horizon, model) row of metrics and
    the headline figures. Written beside the report as ``summary.json``."""

    run_id: str
    primary_horizon: int
    test_rank_ic: float | None = Field(
        description="The model's, primary horizon, test window (reported only)."
    )
    selection_rank_ic: float | None = Field(description="The model's, primary horizon, selection window.")
    oracle_fraction: float | None
    test_days: int
    folds: int
    ensemble_seeds: int
    report: str = Field(description="The Markdown report, relative to the data directory.")
    rows: list[dict[str, Any]] = Field(description="window, horizon, model and the metrics.")


def record_types() -> dict[str, type[Record]]:
    """Every record class by name (the step IO manager stores the name beside the value)."""
    found: dict[str, type[Record]] = {}
    todo: list[type[Record]] = [Record]
    while todo:
        for sub in todo.pop().__subclasses__():
            found[sub.__name__] = sub
            todo.append(sub)
    return found
