"""Process settings for a serving node (``ringkv serve``), and the event loop ringkv's own threads run.

Event loop: uvloop where it is installed (a dependency on Linux and macOS),
asyncio's own otherwise or with ``RINGKV_UVLOOP=0``. Nodes drive ZeroMQ
sockets through ``add_reader`` on their file descriptors, which uvloop
supports; a 3-node cluster took about 10% more puts with it. It is used
by ``ringkv serve`` and by the loop thread of a blocking client or
``ringkv.Node``; an application's own loop is its own choice.

Allocator: a feed page or a streamed chunk is one buffer of a few hundred KiB. glibc
serves blocks over its mmap threshold (128 KiB at start) with fresh
``mmap`` calls, and returns heap memory above its trim threshold at once,
so such buffers keep costing fresh page faults and zeroing while glibc's
dynamic thresholds adjust: a node's first several feed reads ran 30-40%
slower than later ones. Setting both thresholds at start keeps those
buffers in the heap.

Garbage collector: a node allocates a few dozen objects per request, nearly
all freed by reference counting, yet with the default threshold (700) the
collector runs a young collection every few requests: a 3-node cluster
wrote about 15% faster with it turned off. A young generation
of 10,000 objects keeps cycles collected while doing that work a fourteenth
as often.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import sys
from typing import Any, Callable, Coroutine, TypeVar

__all__ = ["tune_allocator", "tune_gc", "tune_process", "loop_factory", "new_event_loop", "run"]

T = TypeVar("T")

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


#: Allocations between young collections (CPython's default is 700).
GC_THRESHOLD = (10_000, 10, 10)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLD)


def tune_process() -> None:
    """Both settings, for a process whose main job is to serve a node."""
    tune_allocator()
    tune_gc()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop factory if it is installed and not turned off, else asyncio's."""
    if os.environ.get("RINGKV_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop :func:`loop_factory` makes."""
    if loop_factory() is asyncio.new_event_loop:
        return asyncio.run(main)
    import uvloop

    return uvloop.run(main)
