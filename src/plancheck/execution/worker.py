"""What a worker process builds once and its tasks use: the caller's state (the batch's checker).

A local pool's initializer (or the main process, for one worker) installs it; a Dask worker
holds one per run registered on it, by token, and installs the run's before each of its tasks.
"""

from __future__ import annotations

from typing import Any, Protocol


class WorkerSetup(Protocol):
    """Builds a worker process's state once, before its tasks run. Picklable: it travels to the workers."""

    def __call__(self) -> Any:
        """The state the tasks of this process will read through `state()`."""

    def portable(self) -> WorkerSetup:
        """The same setup carrying the files it reads, for workers that cannot see this machine's (a cluster)."""


_STATE: Any = None
#: The states of the runs registered on this process, by token (a Dask worker may serve several runs).
_BY_TOKEN: dict[str, Any] = {}


def install(state: Any) -> None:
    """Make `state` what this process's tasks read."""
    global _STATE
    _STATE = state


def state() -> Any:
    """The state this process's tasks read; an error if the process was never set up."""
    assert _STATE is not None, "worker not initialised"
    return _STATE


def register(token: str, value: Any) -> None:
    _BY_TOKEN[token] = value


def drop(token: str) -> None:
    _BY_TOKEN.pop(token, None)


def use(token: str) -> None:
    """Install the state registered under `token`, for the task about to run."""
    value = _BY_TOKEN.get(token)
    if value is None:
        raise RuntimeError(f"plancheck's worker plugin {token} has not set up this worker")
    install(value)
