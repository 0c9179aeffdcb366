"""Skip timing's pass kept between daily predictions.

The gate's backtest reads the whole history, so a daily prediction that starts the pass afresh reads every
earlier date (about 100 s for 4000 stocks x 750 days on 2 cores). Its state after a day
(:class:`~atft_dagster.training.skip_timing.TimingState`) depends on the data and the timing config only,
so the next day continues it from a short window and gets the same figures. The kept state that ends
latest before the day is used only if the features and graph it has read (every input column of every
date up to its last, the graph's rows up to then, and the timed horizons' labels that had ended by then)
hash as they did and the inputs of the dates it still reads match; otherwise the pass starts afresh, and
says why. States are kept per timing config, named by their last date, the KEPT_STATES most recently
written (a backfill of older days continues its own).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from atft_dagster.training.skip_timing import TimingState, timing_key


@dataclass(frozen=True)
class SavedState:
    state: TimingState
    fingerprint: list[int]  # history_fingerprint through state.last


# States kept per timing config, the most recently written: the nightly one, and a backfill's as it goes
KEPT_STATES = 3


def state_dir(directory: Path, cfg: TrainingConfig) -> Path:
    """One folder per timing config (and polars version, which the fingerprint's row hashes depend on):
    states of models that share the config are the same. A state is named by its last date."""
    key = f"{timing_key(cfg)}|polars {pl.__version__}"
    return directory / hashlib.sha256(key.encode()).hexdigest()[:16]


def history_fingerprint(
    features: pl.DataFrame,
    graph: pl.DataFrame | None,
    names: list[str],
    through: date,
    after: date | None = None,
    horizons: tuple[int, ...] | list[int] = (),
) -> list[int]:
    """What a pass through ``through`` has read, as (rows, sum of row hashes mod 2^64) of the input columns
    of every row dated up to then, of the graph's rows, and, per timed horizon h in ``horizons``, of the
    label ``target_{h}d`` of every row whose label has ended by then (dated h or more trading days before
    ``through``: the labels the pass has taken in; a later label is read when it ends). Sums, so that the rows
    after ``after`` alone extend an earlier fingerprint (:func:`extend`). Polars' row hashes are stable
    within one polars version (:func:`state_dir`)."""
    dated = pl.col("date") <= through
    if after is not None:
        dated &= pl.col("date") > after
    rows = features.filter(dated).select("date", "code", *names)
    out = [rows.height, _hash_sum(rows)]
    edges = graph.filter(dated) if graph is not None else pl.DataFrame()
    out += [edges.height, _hash_sum(edges)]
    days = features.filter(pl.col("date") <= through)["date"].unique().sort().to_list() if horizons else []
    for h in horizons:
        ended = pl.col("date") <= _ended_by(days, through, h)
        if after is not None:
            ended &= pl.col("date") > _ended_by(days, after, h)
        labels = features.filter(ended).select("date", "code", f"target_{h}d")
        out += [labels.height, _hash_sum(labels)]
    return out


def _ended_by(days: list[date], day: date, h: int) -> date:
    """The last date whose h-day label has ended by ``day`` (``days``: the trading dates up to at least
    ``day``); before the first date where none has."""
    k = bisect.bisect_right(days, day) - 1 - h
    return days[k] if k >= 0 else date.min


def _hash_sum(frame: pl.DataFrame) -> int:
    return int(frame.hash_rows(seed=0).sum()) if frame.height else 0


def extend(fingerprint: list[int], more: list[int]) -> list[int]:
    return [(a + b) % 2**64 for a, b in zip(fingerprint, more, strict=True)]


def latest_state(folder: Path, before: date) -> SavedState | None:
    """The kept state that ends latest before ``before``; None where there is none or it cannot be read
    (a state is only a cache)."""
    ends = sorted(d for d in (_date_of(p) for p in folder.glob("*.pt")) if d is not None and d < before)
    if not ends:
        return None
    try:
        payload = load_checkpoint(folder / f"{ends[-1]}.pt", "cpu")
        return SavedState(TimingState.from_dict(payload["state"]), list(payload["fingerprint"]))
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def save_state(folder: Path, saved: SavedState) -> Path:
    """Written whole or not at all, as ``{last}.pt``; then only the KEPT_STATES most recently written
    stay."""
    path = folder / f"{saved.state.last}.pt"
    save_checkpoint({"state": saved.state.to_dict(), "fingerprint": saved.fingerprint}, path)
    for old in sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime_ns)[:-KEPT_STATES]:
        old.unlink(missing_ok=True)
    return path


def _date_of(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.stem)
    except ValueError:
        return None
