"""One trading day's predictions from a champion's checkpoints: scores, quantiles and the JPX-style
ranking, reading only the input window that day needs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import torch

from atft_dagster.features.registry import FeatureRegistry
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict
from atft_dagster.training.skip_timing import (
    ResumeRefused,
    TimingStatistics,
    timing_history,
    timing_key,
    timing_statistics,
)
from atft_dagster.training.timing_state import (
    SavedState,
    extend,
    history_fingerprint,
    latest_state,
    save_state,
    state_dir,
)
from atft_dagster.training.train import load_model


def predict_day(
    checkpoints: list[str],
    features: pl.DataFrame,
    registry: FeatureRegistry,
    graph: pl.DataFrame | None,
    day: date,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    timing_dir: Path | None = None,
    notes: list[str] | None = None,
) -> pl.DataFrame:
    """Per stock trading on ``day``: ``pred_{h}d``, quantiles and ``rank`` (0 = best by the primary
    horizon's score; ties by code), sorted by rank. With skip timing and ``timing_dir``, the timing pass
    continues the state kept there (training/timing_state.py) and keeps its own; ``notes`` receives one
    line saying how the pass ran."""
    first, _ = load_model(Path(checkpoints[0]), device)  # read once: config, timing pass and first member
    cfg = first.cfg

    def panel(history: int) -> tuple[PanelTensors, int]:
        return PanelTensors.for_day(
            features, registry, graph, day, cfg.horizons, cfg.seq_len, cfg.input_clip, device, history
        )

    shared: dict[str, TimingStatistics] = {}
    if cfg.skip_timing_half_life > 0 and timing_dir is not None:
        data, t, stats, note = _timed_pass(first, features, registry, graph, day, timing_dir, panel)
        shared[timing_key(cfg)] = stats
        if notes is not None:
            notes.append(note)
    else:
        data, t = panel(timing_history(cfg))
    preds, _ = ensemble_predict(
        checkpoints, data, [t], precision, shared=shared, loaded={checkpoints[0]: first}
    )
    preds = preds.drop([f"label_{h}d" for h in cfg.horizons])
    return preds.sort([f"pred_{cfg.primary_horizon}d", "code"], descending=[True, False]).with_columns(
        pl.int_range(pl.len()).cast(pl.Int32).alias("rank")
    )


def _timed_pass(model, features, registry, graph, day, timing_dir, panel):
    """(tensors, day's index, timing statistics, a note): continue the kept state where it fits, else a
    whole-history pass; the state after ``day`` is kept either way."""
    cfg = model.cfg
    timed = cfg.skip_timing_horizons  # the labels the pass reads
    folder = state_dir(timing_dir, cfg)
    saved = latest_state(folder, day)
    days = features.filter(pl.col("date") <= day)["date"].unique().sort().to_list()
    why = f"no kept state before {day}"
    if saved is not None:
        state = saved.state
        oldest = min([state.last, *state.checks])
        if oldest not in days:
            why = f"the features lack {oldest}, which the kept state reads"
        elif (
            history_fingerprint(features, graph, registry.names, state.last, None, timed) != saved.fingerprint
        ):
            why = f"the features or the graph up to {state.last} changed since the state was kept"
        else:
            data, t = panel(len(days) - 1 - days.index(oldest))
            try:
                stats = timing_statistics(model, data, [t], state)
            except ResumeRefused as exc:
                why = str(exc)
            else:
                if stats.state is not None:
                    more = history_fingerprint(
                        features, graph, registry.names, stats.state.last, state.last, timed
                    )
                    save_state(folder, SavedState(stats.state, extend(saved.fingerprint, more)))
                return data, t, stats, f"skip timing continued the state of {state.last}"
    data, t = panel(timing_history(cfg))
    stats = timing_statistics(model, data, [t])
    if stats.state is not None:
        fingerprint = history_fingerprint(features, graph, registry.names, stats.state.last, None, timed)
        save_state(folder, SavedState(stats.state, fingerprint))
    return data, t, stats, f"skip timing read the whole history ({why})"


def ranking_csv(preds: pl.DataFrame) -> str:
    """The JPX submission layout: Date, SecuritiesCode, Rank."""
    return preds.select(
        pl.col("date").dt.strftime("%Y-%m-%d").alias("Date"),
        pl.col("code").alias("SecuritiesCode"),
        pl.col("rank").alias("Rank"),
    ).write_csv()
