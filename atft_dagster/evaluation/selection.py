"""Champion promotion on selection windows only.

A candidate (a trained run: one seed ensemble per walk-forward fold) is compared with the champion on the
candidate's selection windows. For each candidate fold, the champion is represented by its own fold whose
training ended last but before that selection window starts (so neither side trained on the window); folds
without such a champion fold are left out. Labels of every candidate test date are removed from the data
before anything is scored, so no test-window number can reach the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from atft_dagster.evaluation.metrics import evaluate_predictions
from atft_dagster.training.data import PanelTensors
from atft_dagster.training.ensemble import ensemble_predict


@dataclass(frozen=True)
class TrainedFold:
    """One fold of a trained run: its seed-ensemble members and its window dates."""

    fold: int
    checkpoints: tuple[str, ...]
    train_end: date
    selection: tuple[date, date]
    test: tuple[date, date]

    def as_dict(self) -> dict:
        return {
            "fold": self.fold,
            "checkpoints": list(self.checkpoints),
            "train_end": str(self.train_end),
            "selection": [str(d) for d in self.selection],
            "test": [str(d) for d in self.test],
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrainedFold:
        return cls(
            d["fold"],
            tuple(d["checkpoints"]),
            date.fromisoformat(d["train_end"]),
            tuple(date.fromisoformat(x) for x in d["selection"]),
            tuple(date.fromisoformat(x) for x in d["test"]),
        )


def window_indices(data: PanelTensors, first: date, last: date) -> list[int]:
    return [i for i, d in enumerate(data.dates) if first <= d <= last]


def window_score(
    checkpoints: tuple[str, ...] | list[str],
    data: PanelTensors,
    date_indices: list[int],
    horizon: int,
    metric: str,
    min_stocks: int,
    precision: str = "fp32",
) -> float:
    frame, _ = ensemble_predict(checkpoints, data, date_indices, precision)
    report, _ = evaluate_predictions(frame, f"pred_{horizon}d", f"label_{horizon}d", min_stocks, horizon - 1)
    return float(getattr(report, metric))


@dataclass(frozen=True)
class Comparison:
    candidate: float  # mean over the compared folds' selection windows
    champion: float
    folds: list[int]  # candidate folds compared
    promote: bool
    decision: str


def compare_on_selection(
    candidate: list[TrainedFold],
    champion: list[TrainedFold],
    data: PanelTensors,
    horizon: int,
    metric: str,
    min_stocks: int,
    margin: float,
    precision: str = "fp32",
) -> Comparison:
    hidden = [i for f in candidate for i in window_indices(data, *f.test)]
    blind = data.without_labels(hidden)
    cand, champ, used = [], [], []
    for f in candidate:
        window = window_indices(blind, *f.selection)
        rivals = [c for c in champion if c.train_end < f.selection[0]]
        if not window or not rivals:
            continue
        rival = max(rivals, key=lambda c: c.train_end)
        cand.append(window_score(f.checkpoints, blind, window, horizon, metric, min_stocks, precision))
        champ.append(window_score(rival.checkpoints, blind, window, horizon, metric, min_stocks, precision))
        used.append(f.fold)
    if not used:
        return Comparison(
            float("nan"),
            float("nan"),
            [],
            False,
            "kept champion: it trained on every candidate selection window, so no fair comparison exists",
        )
    c, h = float(np.mean(cand)), float(np.mean(champ))
    promote = c > h + margin
    verdict = "promoted" if promote else "kept champion"
    return Comparison(
        c,
        h,
        used,
        promote,
        f"{verdict}: selection-window {metric} ({horizon}d, folds {used}) new {c:.4f} vs champion {h:.4f} "
        f"+ margin {margin}",
    )
