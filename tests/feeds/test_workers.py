"""workers.process_map: results in order, the same in worker processes and in-process."""

from __future__ import annotations

import os
import threading
import time
from functools import partial

import pytest

from statement_feeds.feeds.workers import process_map


def square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def boom(n: int) -> int:
    if n == 37:
        raise ValueError("job 37")
    return n


def test_small_batches_run_in_this_process() -> None:
    out = list(
        process_map(square_and_pid, iter(range(10)), parallel_from=50, window=8, chunksize=3)
    )
    assert [r for r, _ in out] == [n * n for n in range(10)]
    assert {pid for _, pid in out} == {os.getpid()}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: process_map never forks")
def test_big_batches_run_in_workers_and_keep_their_order() -> None:
    jobs = iter(range(500))  # an iterator, consumed as workers take chunks
    out = list(process_map(square_and_pid, jobs, parallel_from=20, window=40, chunksize=7))
    assert [r for r, _ in out] == [n * n for n in range(500)]
    assert os.getpid() not in {pid for _, pid in out}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: process_map never forks")
def test_a_failing_job_raises_in_the_caller() -> None:
    with pytest.raises(ValueError, match="job 37"):
        list(process_map(boom, iter(range(100)), parallel_from=10, window=20, chunksize=4))


def slow_square(n: int) -> int:
    time.sleep(0.01)
    return n * n


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: process_map never forks")
def test_workers_outlive_the_thread_that_started_them() -> None:
    # The daemon builds in threads of an executor. Workers die with their parent
    # process, but not with the thread that started them (the kernel's PDEATHSIG
    # would fire then): here that thread ends while the pool still has work.
    jobs = 120  # with a thread alive, workers are spawned, from 8 x parallel_from jobs
    results = process_map(slow_square, iter(range(jobs)), parallel_from=10, window=20, chunksize=2)
    first: list[int] = []
    starter = threading.Thread(target=lambda: first.append(next(results)))
    starter.start()
    starter.join()
    assert first + list(results) == [n * n for n in range(jobs)]


def slow_square_and_pid(n: int) -> tuple[int, int]:
    time.sleep(0.002)
    return n * n, os.getpid()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: process_map never forks")
def test_here_this_process_takes_chunks_in_place_of_one_worker() -> None:
    out = list(
        process_map(
            slow_square_and_pid,
            iter(range(400)),
            parallel_from=20,
            window=8,
            chunksize=2,
            here=True,
        )
    )
    assert [r for r, _ in out] == [n * n for n in range(400)]
    pids = {pid for _, pid in out}
    assert os.getpid() in pids  # this process rendered some chunks itself
    assert len(pids - {os.getpid()}) <= min(os.cpu_count() or 1, 4) - 1  # one worker fewer


def fail_here(parent: int, n: int) -> int:
    time.sleep(0.002)
    if os.getpid() == parent:
        raise ValueError("failed in this process")
    return n


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: process_map never forks")
def test_here_a_job_failing_in_this_process_raises_in_the_caller() -> None:
    func = partial(fail_here, os.getpid())
    with pytest.raises(ValueError, match="failed in this process"):
        list(
            process_map(func, iter(range(400)), parallel_from=20, window=8, chunksize=2, here=True)
        )
