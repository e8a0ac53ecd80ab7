"""Memory settings of the long-lived daemon process (glibc's allocator).

glibc gives each thread that allocates concurrently a malloc arena of its own; memory
freed in one arena is only reused by the threads on that arena. The daemon builds in
worker threads (``asyncio.to_thread``) while the loop thread keeps its own objects, and
under an hour of churn its RSS kept growing as free space fragmented across two arenas,
with the memory in use flat (bench/README.md, "One hour of churn"). All the Python code
runs under one lock anyway, so one arena costs no parallelism: the allocations that
overlap are the C libraries' inside builds, which are short.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["share_one_malloc_arena"]

_M_ARENA_MAX = -8  # mallopt parameter, <malloc.h>


def share_one_malloc_arena() -> bool:
    """Make every thread allocate from one glibc arena; False where that is not glibc.

    Call it before the process starts threads: glibc fixes its arena limit when a
    second thread first needs an arena, and an arena, once made, is never removed.
    ``MALLOC_ARENA_MAX=1`` in the environment does the same from the start.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, 1))
