"""Row blocks for memory-bound passes on a CPU.

Some steps build an intermediate several times larger than their input (the loss's (n, n) soft-rank
comparisons, FAN's Fourier coefficients) and then reduce it. On a CPU with the few cores this project
targets, such passes are bound by memory bandwidth; taking the rows in blocks whose intermediate fits in a
core's cache made them about twice as fast (docs/benchmarks.md, "Row blocks"). On a GPU all rows go at
once: there the cost is the number of kernel launches.
"""

from __future__ import annotations

import torch

CPU_BLOCK_BYTES = 2 << 20  # intermediate bytes per block on a CPU


def rows_per_block(x: torch.Tensor, bytes_per_row: int) -> int:
    """How many of ``x``'s leading rows go through together: all of them on a GPU, else as many as keep
    their intermediate (``bytes_per_row`` each) within ``CPU_BLOCK_BYTES`` (at least one)."""
    if x.is_cuda:
        return max(1, x.shape[0])
    return max(1, CPU_BLOCK_BYTES // max(1, bytes_per_row))
