"""Allocator settings for a serving node process.

A feed page or a streamed chunk is one buffer of a few hundred KiB. glibc
serves blocks over its mmap threshold (128 KiB at start) with fresh
``mmap`` calls, so every such buffer costs page faults and zeroing until
the threshold has crept up on its own, which takes a few thousand large
frees: a node's first several feed reads ran 30-40% slower than later ones.
Setting the thresholds once at start keeps those buffers in the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks below this come from the heap (glibc's own upper bound is 32 MiB on 64-bit).
MMAP_THRESHOLD = 4 << 20
#: Free memory at the top of the heap beyond this goes back to the system.
TRIM_THRESHOLD = 16 << 20


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and others: no mallopt, nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
