"""Child processes that do not outlive their parent.

Worker processes (the build's pools) block on pipes their
parent feeds; after a kill -9 of the parent nothing closes those pipes for them
(forked siblings hold the other ends too), so without help they would wait forever,
holding the spool files and SQLite databases they had open.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["die_with_parent", "watch_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when its parent dies, so no worker outlives a kill -9.

    The kernel's "parent" is the *thread* that started this process: use this only in
    a process started by a thread that lives as long as its process (the main thread),
    else the worker would be killed when that thread ends. See :func:`watch_parent`.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent-pid check below still runs
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def watch_parent(parent: int, interval: float = 0.25) -> None:
    """Exit this process within ``interval`` seconds of its parent's death.

    For processes started by a thread that may end before its process does (the
    daemon builds in worker threads), where :func:`die_with_parent` would kill too
    early: a daemon thread compares ``getppid()`` (an orphan is re-parented) with
    ``parent``. It exits with ``os._exit``: the process's other threads may be
    blocked in a read that will never return.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
