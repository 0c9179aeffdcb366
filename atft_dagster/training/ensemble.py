"""Seed ensembles: the trained artefact of a fold is N models that differ only in their training seed.

The ensemble's score of a stock on a date is the mean over members of the member's cross-sectional
percentile rank of its point prediction (rank / count, ties averaged), per horizon. Averaging ranks, not raw
outputs, keeps a member with a larger output scale from dominating. Quantiles are the members' mean.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import torch

from atft_dagster.model.atft import ATFTGATFAN, HorizonSelected
from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_timing import TimingStatistics, timing_key, timing_statistics
from atft_dagster.training.train import load_model, predict


def member_seeds(seed: int, n: int) -> list[int]:
    return [seed + i for i in range(n)]


def rank_average(members: list[pl.DataFrame], horizons: list[int]) -> pl.DataFrame:
    """Per (date, code): ``pred_{h}d`` = mean of members' per-date percentile ranks of ``pred_{h}d``;
    every other numeric column (labels, quantiles) = the members' mean (labels are equal anyway)."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    keys = ["date", "code"]
    ranked = []
    for m in members:
        pct = [
            (pl.col(f"pred_{h}d").rank("average").over("date") / pl.len().over("date")).alias(f"pred_{h}d")
            for h in horizons
        ]
        ranked.append(m.with_columns(pct))
    allm = pl.concat(ranked)
    values = [c for c in members[0].columns if c not in keys]
    return allm.group_by(keys, maintain_order=True).agg([pl.col(c).mean() for c in values]).sort(keys)


def ensemble_predict(
    checkpoints: list[str] | tuple[str, ...],
    data: PanelTensors,
    date_indices: list[int],
    precision: str = "fp32",
    device: torch.device | str | None = None,
    timing: dict | None = None,
    shared: dict[str, TimingStatistics] | None = None,
    loaded: dict[str, ATFTGATFAN | HorizonSelected] | None = None,
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """(ensemble frame, member frames) for ``date_indices``. With skip timing, its statistics are computed
    once and shared by members of the same timing config (they do not depend on the weights). ``timing``:
    ``skip_timing_*`` fields that replace the checkpoints' own (timing acts at prediction time only, so a
    model trained without it can be scored with it). ``shared``: statistics already computed for these
    dates, by :func:`timing_key` (a daily prediction's continued pass). ``loaded``: models already read from
    some of ``checkpoints`` (by path, on ``device``), used instead of reading them again."""
    if timing and not all(k.startswith("skip_timing_") for k in timing):
        raise ValueError(f"timing takes skip_timing_* fields only, not {sorted(timing)}")
    device = device or data.device
    frames = []
    horizons: list[int] = []
    shared = dict(shared or {})
    for path in checkpoints:
        model = (loaded or {}).get(path)
        if model is None:
            model = load_model(Path(path), device)[0]
        own = model.cfg
        if timing:  # for this call only: a model the caller loaded keeps its own config
            model.cfg = TrainingConfig(**{**own.model_dump(), **timing})  # validated
        try:
            horizons = model.cfg.horizons
            stats = None
            if model.cfg.skip_timing_half_life > 0 and date_indices:
                key = timing_key(model.cfg)
                if key not in shared:
                    shared[key] = timing_statistics(model, data, date_indices)
                stats = shared[key]
            frames.append(predict(model, data, date_indices, model.cfg.batch_dates, precision, stats))
        finally:
            model.cfg = own
    return rank_average(frames, horizons), frames
