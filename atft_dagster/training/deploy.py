r"""Deployment refit: the ridge start, refitted on every labelled day before the champion ranks new days.

Fold 0 keeps its validation, selection and test windows after the train window, so the evaluated model's
last label lies about ``selection_days + test_days + 2 (purge + embargo)`` trading days before the first day
it ranks. Each horizon that kept the ridge start (epoch -1) is refitted here, at the penalty it chose, on
every usable date whose label has ended (:func:`skip_init.ridge_solutions` drops the rows without one):

.. math::
    w_h = (U_h^\top U_h + n_h \lambda_h I)^{-1} U_h^\top y^z_h,\quad
    \text{rows: every date } t \le T \text{ whose } h\text{-day label has ended by } T

with T the last date of the data. Nothing is chosen again, the evaluated checkpoint is left as it is (the
report's figures are its), and the refit is written beside it. It reads labels up to T, so it may rank only
days from T on (``ChampionState.members_for``). Measured on the tuning markets: docs/benchmarks.md, fortieth
sweep.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import torch

from atft_dagster.model.atft import ATFTGATFAN
from atft_dagster.model.config import TrainingConfig
from atft_dagster.training.checkpoint import load_checkpoint, save_checkpoint
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.skip_init import ridge_solutions, set_skip
from atft_dagster.training.train import START

DEPLOYED = "deployed.pt"
SHARED = "deployment_ridge.pt"  # in the fold's folder: the refit every member of the fold shares


@torch.no_grad()
def _ridge(
    model: ATFTGATFAN, data: PanelTensors, dates: list[int], penalty: dict[str, float], shared: Path | None
) -> tuple[torch.Tensor, dict[str, int]]:
    """((H, d) weights, each horizon at its penalty; rows per horizon). The skip's inputs hold no trained
    parameter and the seeds' ridge starts choose the same penalties, so a fold's members share one solve:
    ``shared`` keeps it, keyed by the dates and penalties (written atomically; a parallel member that
    misses it solves again, to the same weights)."""
    cfg = model.cfg
    key = {
        "dates": [str(data.dates[dates[0]]), str(data.dates[dates[-1]]), len(dates)],
        "penalty": penalty,
        "inputs": model.skip.lin.in_features,
    }
    if shared is not None and shared.exists():
        kept = load_checkpoint(shared, data.device)
        if kept.get("key") == key:
            return kept["weight"], kept["rows"]
    weights, rows = ridge_solutions(model, data, dates, sorted(set(penalty.values())), cfg.batch_dates)
    weight = torch.stack([weights[penalty[f"{h}d"]][j] for j, h in enumerate(cfg.horizons)])
    if shared is not None:
        save_checkpoint({"key": key, "weight": weight, "rows": rows}, shared)
    return weight, rows


@torch.no_grad()
def deployment_refit(
    checkpoint: Path,
    data: PanelTensors,
    out: Path,
    shared: Path | None = None,
    through: int | None = None,
) -> dict[str, Any] | None:
    """Write ``out``: ``checkpoint`` with the skip of every horizon that kept the ridge start refitted on
    all of ``data``'s labelled dates (``shared``: where the fold's members keep the solve they share).
    ``through``: the last date index whose rows may enter (the benchmark's "deployed at the test start":
    the last selection date, whose labels end inside the purge gap); None: every date, as the pipeline
    refits on data that ends at its last date. Returns what was refitted (horizons, dates, rows per
    horizon), or None when no horizon kept the start (nothing is written: the evaluated checkpoint is the
    deployed one)."""
    ck = load_checkpoint(checkpoint, data.device)
    cfg = TrainingConfig.from_recorded(ck["config"])
    states, epochs = ck.get("horizon_states"), ck.get("horizon_epochs")
    penalty = (ck.get("start_validation") or {}).get("penalty")
    if not states or not epochs or START not in states or not penalty:
        return None  # one epoch for all horizons, or no ridge start: nothing to refit
    kept = [k for k, e in epochs.items() if e == START]
    if not kept:
        return None
    model = ATFTGATFAN(ck["n_features"], cfg).to(data.device)
    model.load_state_dict(states[START])
    dates = [t for t in data.usable_dates(cfg.min_stocks_per_date) if through is None or t <= through]
    weight, rows = _ridge(model, data, dates, {f"{h}d": penalty[f"{h}d"] for h in cfg.horizons}, shared)
    skip = model.skip.lin.weight.clone()
    for j, h in enumerate(cfg.horizons):
        if f"{h}d" in kept:
            skip[j] = weight[j].to(skip.dtype)
    set_skip(model, skip)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    record = {
        "horizons": kept,
        "dates": [str(data.dates[dates[0]]), str(data.dates[dates[-1]])],
        "data_end": str(data.dates[-1 if through is None else through]),
        "rows": {k: rows[k] for k in kept},
        "penalty": {k: penalty[k] for k in kept},
    }
    payload = {**ck, "horizon_states": {**states, START: state}, "deployment_refit": record}
    if ck.get("epoch") == START:
        payload["state_dict"] = state
    save_checkpoint(payload, out)
    return record


def members_for_day(
    evaluated: list[str], deployed: list[str] | None, data_end: date | None, day: date
) -> tuple[list[str], str]:
    """The checkpoints that rank ``day``, and why: the deployed ones from ``data_end`` on (they read labels up
    to it), the evaluated ones before (a backfilled day may not see later labels) or without a refit."""
    if not deployed or data_end is None:
        return evaluated, "evaluated checkpoints (no deployment refit)"
    if day < data_end:
        return (
            evaluated,
            f"evaluated checkpoints ({day} is before {data_end}, the deployment refit's last date)",
        )
    return deployed, f"deployment refit through {data_end}"


def refit_data_end(checkpoints: list[str]) -> date | None:
    """The last data date of the deployment refit recorded in ``checkpoints`` (None: none has one)."""
    ends = {
        ck["deployment_refit"]["data_end"]
        for ck in (load_checkpoint(Path(c), "cpu") for c in checkpoints)
        if ck.get("deployment_refit")
    }
    if len(ends) > 1:
        raise ValueError(f"deployed checkpoints refitted through different dates: {sorted(ends)}")
    return date.fromisoformat(ends.pop()) if ends else None
