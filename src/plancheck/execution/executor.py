"""The one seam between a run's pipeline and where its tasks run.

An `ExecutorFactory` is given the run's `WorkerSetup` (what each worker process builds once)
and its partition count, and yields an `Executor` for the run's life: in this process
(`Inline`, one worker), a local process pool (local.py) or a Dask cluster (cluster.py). Each
gives the tasks a `RunDir` they all see and removes it however the run ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from plancheck.execution.rundir import RunDir
from plancheck.execution.worker import WorkerSetup


class Executor(Protocol):
    """Where a run's tasks run. The pipeline is one path whichever it is."""

    #: Tasks that run at once (a feed is read in about 4x as many ranges).
    workers: int
    #: The tasks run where this process's files may not be seen (a cluster): even one range is a task.
    remote: bool
    run_dir: RunDir
    #: Where the run went, for the `batch_cluster` event and the summary (empty when local).
    info: dict[str, Any]

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Run fn(*job) for each job; yield (job index, result) as each finishes. A task's exception is raised."""


#: Makes the executor of a run: (worker setup, partitions) -> a context that yields it and cleans up.
ExecutorFactory = Callable[[WorkerSetup, int], AbstractContextManager[Executor]]


@dataclass
class Inline:
    """One worker: tasks run in this process, one after another."""

    run_dir: RunDir
    workers: int = 1
    remote: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        for index, job in enumerate(jobs):
            yield index, fn(*job)
