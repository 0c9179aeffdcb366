"""Run-level decisions as plain functions over typed records: what a training run produced
(:class:`TrainedModel`), what the evaluation found (:class:`EvaluationResult`), which model is champion
(:class:`ChampionState`), whether to retrain, and one day's ranking. No Dagster here: the assets in
``defs/`` load inputs, call these, write the result and attach metadata."""

from atft_dagster.pipeline.layout import DataLayout
from atft_dagster.pipeline.records import ChampionState, FoldWindows, TrainedMember, TrainedModel

__all__ = ["ChampionState", "DataLayout", "FoldWindows", "TrainedMember", "TrainedModel"]
