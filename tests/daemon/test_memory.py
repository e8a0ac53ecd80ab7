"""One malloc arena for the daemon: counted in glibc's own report (malloc_info)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys

import pytest

# Four threads allocate at once, then glibc's malloc_info(3) XML lists one <heap> per
# arena. Run in a fresh interpreter: arenas are made once and never removed.
THREADS = """
import ctypes, ctypes.util, os, sys, tempfile, threading
from statement_feeds.daemon.memory import share_one_malloc_arena
if sys.argv[1] == "share":
    assert share_one_malloc_arena()
start = threading.Barrier(4)
def allocate():
    start.wait()
    kept = [ctypes.create_string_buffer(3000) for _ in range(3000)]
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fdopen.restype = ctypes.c_void_p
fd, path = tempfile.mkstemp()
stream = ctypes.c_void_p(libc.fdopen(fd, b"w"))
libc.malloc_info(0, stream)
libc.fclose(stream)
with open(path) as report:
    print(report.read().count("<heap nr="))
os.unlink(path)
"""


def _glibc() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return hasattr(libc, "malloc_info") and hasattr(libc, "mallopt")
    except OSError:
        return False


def _arenas(mode: str) -> int:
    # Without the environment's own arena settings, which would decide the "default" run.
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    result = subprocess.run(
        [sys.executable, "-c", THREADS, mode], check=True, capture_output=True, text=True, env=env
    )
    return int(result.stdout)


@pytest.mark.skipif(not _glibc(), reason="malloc arenas are glibc's; this C library has none")
def test_threads_share_one_arena() -> None:
    assert _arenas("default") > 1  # the test can see arenas: without the setting, several
    assert _arenas("share") == 1
