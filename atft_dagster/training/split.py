"""Walk-forward splits in time order with four windows and a purge + embargo gap between every pair:

    [train] gap [validation] gap [selection] gap [test]

- train: fitting; validation: early stopping and checkpoint choice;
- selection: every decision between models (champion promotion, config comparisons);
- test: reported only. No decision may read it.

Folds go back from the latest data in strides of ``selection + gap + test + gap`` dates, so no fold's test
window overlaps any fold's selection window: a test day is never a selection day anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

WINDOWS = ("train", "val", "selection", "test")


@dataclass(frozen=True)
class Split:
    fold: int
    train: list[int]  # date indices
    val: list[int]
    test: list[int]
    gap: int
    selection: list[int] = field(default_factory=list)

    def window(self, name: str) -> list[int]:
        if name not in WINDOWS:
            raise ValueError(f"unknown window {name!r}: one of {WINDOWS}")
        return getattr(self, name)

    def describe(self, dates: list) -> dict:
        def rng(ix: list[int]) -> list[str]:
            return [str(dates[ix[0]]), str(dates[ix[-1]])] if ix else []

        return {
            "fold": self.fold,
            "gap_days": self.gap,
            **{w: rng(self.window(w)) for w in WINDOWS},
            "sizes": [len(self.window(w)) for w in WINDOWS],
        }

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(d["fold"], d["train"], d["val"], d["test"], d["gap"], d.get("selection", []))


def fold_stride(selection_days: int, test_days: int, gap: int) -> int:
    """Dates each fold is shifted back by: keeps every test window off every selection window."""
    return selection_days + test_days + 2 * gap


def walk_forward(
    usable: list[int],
    val_days: int,
    test_days: int,
    purge: int,
    embargo: int,
    n_folds: int = 1,
    scheme: str = "expanding",
    selection_days: int = 0,
) -> list[Split]:
    """Folds from the latest backwards (see the module docstring), gap = purge + embargo dates.
    ``expanding`` trains on everything before; ``rolling`` gives every fold the training length the oldest
    fold has. ``selection_days`` 0 leaves the selection window out (then no gap is spent on it)."""
    gap = purge + embargo
    sel_block = selection_days + gap if selection_days else 0
    stride = fold_stride(selection_days, test_days, gap) if selection_days else test_days
    bounds = []
    for k in range(n_folds):
        end = len(usable) - k * stride
        sel_end = end - test_days - gap
        val_end = sel_end - sel_block
        train_end = val_end - val_days - gap
        if train_end <= 0 or val_end - val_days < 0:
            raise ValueError(
                f"not enough dates for fold {k}: {len(usable)} usable, need val {val_days} + selection "
                f"{selection_days} + test {test_days} + gaps of {gap} + training days for {n_folds} fold(s)"
            )
        bounds.append((end, sel_end, val_end, train_end))
    shortest = min(b[3] for b in bounds)
    folds = []
    for k, (end, sel_end, val_end, train_end) in enumerate(bounds):
        start = train_end - shortest if scheme == "rolling" else 0
        folds.append(
            Split(
                k,
                usable[start:train_end],
                usable[val_end - val_days : val_end],
                usable[end - test_days : end],
                gap,
                usable[sel_end - selection_days : sel_end] if selection_days else [],
            )
        )
    return folds


def all_test_dates(folds: list[Split]) -> set[int]:
    """Every date index that is a test date of some fold."""
    return {t for f in folds for t in f.test}
