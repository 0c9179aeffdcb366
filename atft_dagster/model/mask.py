"""The inputs' validity mask, held as its distinct rows.

Features go missing together (a stock's warm-up window, a day it did not trade, a feature family not yet
defined), so a panel of hundreds of thousands of stock-days has a few dozen distinct mask rows. Holding
the mask as those rows and an index gathers no (n, L, F) tensor per batch, and the model projects each
distinct row once instead of once per stock-day.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PatternMask:
    r"""An (n, L, F) 0/1 mask as ``rows`` (P, F) and ``index`` (n, L): :math:`m_{it} = \mathrm{rows}[\mathrm{index}_{it}]`."""

    index: torch.Tensor  # (n, L) long
    rows: torch.Tensor  # (P, F) float

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.index.shape, self.rows.shape[1])

    def dense(self) -> torch.Tensor:
        """The (n, L, F) mask."""
        return self.rows[self.index]

    def step_mean(self) -> torch.Tensor:
        """``dense().mean(dim=1)`` (n, F), without building the dense mask."""
        return F.embedding_bag(self.index, self.rows, mode="mean")

    def project(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``F.linear(dense(), weight, bias)`` (n, L, out), each distinct row projected once."""
        return F.embedding(self.index, F.linear(self.rows, weight, bias))

    def compact(self) -> PatternMask:
        """The same mask with only the rows its index uses (a device sync: the count is data-dependent)."""
        used, inverse = torch.unique(self.index, return_inverse=True)
        return PatternMask(inverse, self.rows[used])

    def pad(self, n: int) -> PatternMask:
        """``n`` more all-zero stock rows at the end (a padded batch's empty rows)."""
        zero = self.rows.new_zeros(1, self.rows.shape[1])
        index = F.pad(self.index, (0, 0, 0, n), value=self.rows.shape[0])
        return PatternMask(index, torch.cat([self.rows, zero]))
