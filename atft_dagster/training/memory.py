"""How the C allocator treats the large, short-lived tensors of a CPU training step.

glibc serves every block above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
``mmap``, unmapped on free, so each elementwise pass over a (stocks, window, features) tensor pays for page
faults on new pages.
Keeping freed memory in the heap for reuse made a 1000-stock training epoch about 10 % faster on 2 cores
(docs/benchmarks.md, "Training throughput"); the price is that the process keeps its peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes: freed heap memory is never returned to the OS


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") else None


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap (no mmap) and never trim it. Returns False where the C library is
    not glibc (nothing changed). Process-wide and not undone: call it in processes that train or predict."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
