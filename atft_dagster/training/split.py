"""Walk-forward splits in time order with a purge gap (>= the longest horizon) and an embargo."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Split:
    fold: int
    train: list[int]  # date indices
    val: list[int]
    test: list[int]
    gap: int

    def describe(self, dates: list) -> dict:
        def rng(ix: list[int]) -> list[str]:
            return [str(dates[ix[0]]), str(dates[ix[-1]])] if ix else []

        return {
            "fold": self.fold,
            "gap_days": self.gap,
            "train": rng(self.train),
            "val": rng(self.val),
            "test": rng(self.test),
            "sizes": [len(self.train), len(self.val), len(self.test)],
        }

    def as_dict(self) -> dict:
        return asdict(self)


def walk_forward(
    usable: list[int],
    val_days: int,
    test_days: int,
    purge: int,
    embargo: int,
    n_folds: int = 1,
    scheme: str = "expanding",
) -> list[Split]:
    """Folds from the latest backwards: [train] gap [val] gap [test], gap = purge + embargo dates.
    Fold k shifts everything back by k * test_days. ``expanding`` trains on everything before; ``rolling``
    gives every fold the training length the oldest fold has."""
    gap = purge + embargo
    bounds = []
    for k in range(n_folds):
        end = len(usable) - k * test_days
        val_end = end - test_days - gap
        train_end = val_end - val_days - gap
        if train_end <= 0 or end - test_days < 0 or val_end - val_days < 0:
            raise ValueError(
                f"not enough dates for fold {k}: {len(usable)} usable, need val {val_days} + test {test_days} + 2 gaps of {gap} + training days"
            )
        bounds.append((end, val_end, train_end))
    shortest = min(b[2] for b in bounds)
    folds = []
    for k, (end, val_end, train_end) in enumerate(bounds):
        start = train_end - shortest if scheme == "rolling" else 0
        folds.append(
            Split(
                k,
                usable[start:train_end],
                usable[val_end - val_days : val_end],
                usable[end - test_days : end],
                gap,
            )
        )
    return folds
