"""keep_freed_memory changes where glibc puts a large block (checked in a fresh process each way)."""

from __future__ import annotations

import subprocess
import sys

import pytest

MAPPED_AFTER_A_LARGE_MALLOC = """
import ctypes, sys
from atft_dagster.training.memory import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
class MallInfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.mallinfo.restype = ctypes.c_void_p, MallInfo
block = libc.malloc(64 << 20)
print(libc.mallinfo().hblkhd)
"""


@pytest.mark.parametrize("setting", ["on", "off"])
def test_keep_freed_memory_decides_where_large_blocks_live(setting):
    """On: a 64 MiB block comes from the heap, kept for reuse after free; off: glibc maps it (and unmaps it
    on free, so the next one faults in fresh pages)."""
    out = subprocess.run(
        [sys.executable, "-c", MAPPED_AFTER_A_LARGE_MALLOC, setting],
        capture_output=True,
        text=True,
        check=True,
    )
    mapped = int(out.stdout.split()[-1])
    assert mapped < 64 << 20 if setting == "on" else mapped >= 64 << 20
