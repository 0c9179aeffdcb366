"""Champion promotion: the rule, separate from how the selection-window scores are computed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from atft_dagster.evaluation.selection import Comparison, TrainedFold
from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import ChampionState, TrainedModel

# (candidate folds, champion folds) -> the selection-window comparison; called only when one is needed
Compare = Callable[[list[TrainedFold], list[TrainedFold]], Comparison]


@dataclass(frozen=True)
class ChampionDecision:
    promote: bool
    decision: str
    candidate_score: float | None
    champion_score: float | None
    state: ChampionState  # the champion afterwards


def decide_champion(
    candidate: TrainedModel,
    previous: ChampionState | None,
    layout: DataLayout,
    compare: Compare,
    metric: str,
) -> ChampionDecision:
    """Promote ``candidate`` unless a comparable champion scores at least as well on the candidate's
    selection windows (``compare`` applies the margin). No comparison is possible, and the candidate is
    promoted, when there is no champion, or it was built for another feature manifest, or it was written
    before selection windows were recorded."""

    def promoted(decision: str, score: float | None = None, champ: float | None = None) -> ChampionDecision:
        state = ChampionState.from_model(candidate, layout, metric, score, decision)
        return ChampionDecision(True, decision, score, champ, state)

    if previous is None:
        return promoted("first model: promoted")
    if previous.run_id == candidate.run_id:
        return promoted("already champion")
    if previous.feature_manifest_hash != candidate.feature_manifest_hash:
        return promoted("champion built for another feature manifest: promoted")
    if previous.folds is None:
        return promoted("champion written by an earlier version (no selection windows recorded): promoted")
    cmp = compare(candidate.trained_folds(layout), previous.trained_folds(layout))
    if cmp.promote:
        return promoted(cmp.decision, cmp.candidate, cmp.champion)
    return ChampionDecision(False, cmp.decision, cmp.candidate, cmp.champion, previous)


class ChampionRecordMissing(FileNotFoundError):
    pass


def load_champion(layout: DataLayout, version: str | None) -> ChampionState | None:
    """The champion is the registered model version the MLflow alias ``champion`` points at (``version``,
    None when no alias is set): its record is the one written when that version was promoted. Without an
    alias, the champion.json of an earlier version is read, if there is one; else there is no champion."""
    if version is not None:
        path = layout.champion_record(version)
        if not path.exists():
            raise ChampionRecordMissing(
                f"the MLflow alias 'champion' points at model version {version}, whose record {path} is "
                "missing: point the alias at a promoted version, or retrain"
            )
        return ChampionState.from_json(path.read_text(encoding="utf-8"))
    legacy = layout.champion_file
    return ChampionState.from_json(legacy.read_text(encoding="utf-8")) if legacy.exists() else None


def require_version(state: ChampionState) -> str:
    """A champion is a registered model version (the alias can point at nothing else)."""
    if not state.mlflow_model_version:
        raise ChampionRecordMissing(
            f"run {state.run_id} has no registered MLflow model version and cannot be champion: retrain it"
        )
    return state.mlflow_model_version
