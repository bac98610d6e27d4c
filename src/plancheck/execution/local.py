"""This machine: the run's tasks in this process (one worker) or in a local process pool.

Each pool worker builds the caller's state once, in its initializer (`WorkerSetup`); if the
run fails or is interrupted (an exception, Ctrl-C, SIGTERM) the workers are stopped at once
rather than left to finish their partitions.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from plancheck.execution import worker
from plancheck.execution.executor import Executor, ExecutorFactory, Inline
from plancheck.execution.process import keep_freed_memory, worker_process
from plancheck.execution.rundir import RunDir
from plancheck.execution.worker import WorkerSetup


def _init_worker(setup: WorkerSetup) -> None:
    """Pool initializer: the process's settings, then the caller's state, built once."""
    worker_process()
    worker.install(setup())


def _ready() -> None:
    """A task that does nothing: submitting it starts a worker, which builds its state."""


@dataclass
class Pool:
    """A local process pool whose workers built their state in their initializer."""

    pool: ProcessPoolExecutor
    workers: int
    run_dir: RunDir
    remote: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        futures = {self.pool.submit(fn, *job): index for index, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def local_executor(workers: int) -> ExecutorFactory:
    """This machine: `workers` processes (no more than there are partitions), in this process when one."""

    @contextmanager
    def make(setup: WorkerSetup, partitions: int) -> Iterator[Executor]:
        count = max(1, min(workers, partitions))  # a pool costs a second to start: not for a small feed
        run_dir = RunDir(tempfile.mkdtemp(prefix="plancheck-run-"))
        try:
            if count <= 1:
                keep_freed_memory()
                worker.install(setup())
                yield Inline(run_dir)
            else:
                with _pool(count, setup) as pool:
                    yield Pool(pool, count, run_dir)
        finally:
            run_dir.remove()

    return make


@contextmanager
def _pool(workers: int, setup: WorkerSetup) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers each build their state once; stopped at once if the run fails."""
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(setup,))
    for _ in range(workers):  # start every worker now: they build their state while the feed is cut into ranges
        pool.submit(_ready)
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued, terminate the worker processes (kill any that linger), and wait for them."""
    processes = list((pool._processes or {}).values())  # noqa: SLF001 - the executor offers no kill
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join(timeout=2)
    pool.shutdown(wait=True, cancel_futures=True)
