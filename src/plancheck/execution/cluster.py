"""A run on a Dask cluster: the same tasks as a local run (the two phases of checks/batch/run.py), as Dask tasks.

`cluster_executor("tcp://scheduler:8786", work_dir)` or `cluster_executor("local:N")` makes the
run's Executor: each spill range and each partition check is one task (`Client.submit`, results
taken with `as_completed`), and a WorkerPlugin builds the caller's state (the batch's checker)
once per worker process from the `WorkerSetup` it carries, made portable: the rules' files and
the plans travel with it (so the workers need plancheck installed, not the client's rules directory). Spill pieces and per-partition outputs go to a run directory under the
work directory, which every worker and the client must see: a shared path, or an fsspec URL
(`s3://bucket/prefix`, `file:///shared/plancheck`), staged through a local scratch directory per
task. The client merges exactly as a local run does, so the output is the same.

A worker lost mid-run is Dask's to handle: its tasks run again elsewhere (the scheduler gives up
on a task after `distributed.scheduler.allowed-failures` lost workers, 3 by default, set here for
a LocalCluster); every attempt names its files apart, so a retry never meets a half-written
file. `distributed` is the optional `dask` extra; it is imported only here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plancheck.errors import InputError, Problem, shorten
from plancheck.execution import worker as worker_state
from plancheck.execution.executor import Executor, ExecutorFactory
from plancheck.execution.rundir import FsspecRunDir, RunDir
from plancheck.execution.worker import WorkerSetup

#: How long to wait for a scheduler to answer, and for a scheduler to have at least one worker (seconds).
CONNECT_TIMEOUT = 10
WORKERS_TIMEOUT = 60
#: Lost workers a task may cost before the run fails (LocalCluster; a remote scheduler has its own setting).
ALLOWED_FAILURES = 3
#: Dask configuration of the LocalCluster of `local:N`. Its nanny gives each worker MALLOC_TRIM_THRESHOLD_=65536
#: by default, which turns off glibc's dynamic mmap threshold: every large numpy temporary becomes an
#: mmap/munmap and the partition check runs about twice as slow (facts 1.1 s -> 2.4 s over 2.6 M rows).
#: Unset it (None) for our workers; README says how to do the same for `dask worker`.
LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                # The workers' own log lines (a task cancelled at Ctrl-C, say) stay off stderr unless
                # they are errors: the command line says what happened. Read by distributed as it is
                # imported in the worker process, hence an environment variable set before the spawn.
                "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED": "error"}
INSTALL_HINT = "--cluster needs the 'dask' extra: pip install 'plancheck[dask]'"


class ClusterError(InputError):
    """The cluster cannot run the batch (unreachable, no workers, a path the workers cannot see): exit 2."""


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(Problem("--cluster", "", f"{INSTALL_HINT} ({exc})")) from None
    return distributed


# -- the run directory --------------------------------------------------------------------------

def _is_url(text: str) -> bool:
    return "://" in text


def _new_run_dir(work_dir: str | None) -> RunDir:
    """A fresh run directory under the work directory (a temporary one by default)."""
    name = f"plancheck-run-{uuid.uuid4().hex[:12]}"
    if work_dir and _is_url(work_dir):
        try:
            import fsspec  # noqa: F401 - a dependency of distributed, named here for the message
        except ImportError as exc:
            raise ClusterError(Problem("--work-dir", "", f"{INSTALL_HINT} ({exc})")) from None
        folder = FsspecRunDir(f"{work_dir.rstrip('/')}/{name}")
        try:
            folder.make()
        except (OSError, ValueError, ImportError) as exc:
            raise ClusterError(Problem(work_dir, "", f"cannot create the run directory there: "
                                                     f"{shorten(str(exc), 200)}")) from None
        return folder
    base = Path(work_dir) if work_dir else Path(tempfile.gettempdir())
    try:
        base.mkdir(parents=True, exist_ok=True)
        return RunDir(tempfile.mkdtemp(prefix="plancheck-run-", dir=base), per_attempt=True)
    except OSError as exc:
        raise ClusterError(Problem(str(base), "", f"cannot create the run directory there: {exc.strerror}")) from None


# -- on the workers -------------------------------------------------------------------------------

#: One task at a time per process: durable-rules' engine must not be used from two threads (nthreads > 1).
_LOCK = threading.Lock()


def _on_worker(token: str, fn: Callable[..., Any], *job: Any) -> Any:
    """Run one task of the run `token` with that run's state as the process's state."""
    with _LOCK:
        worker_state.use(token)
        return fn(*job)


def _sees(paths: list[str]) -> list[tuple[str, str]]:
    """The paths (or feed URLs) this worker cannot see, each with why."""
    from plancheck.documents.feed.source import Source

    unseen = []
    for where in paths:
        source = Source.of(where)
        if source.local is not None:
            if not os.path.exists(where):
                unseen.append((where, "not found"))
            continue
        try:
            if not source.info()["is_file"]:
                unseen.append((where, "not found"))
        except Exception as exc:  # noqa: BLE001 - whatever the protocol's package raises, it is said
            unseen.append((where, shorten(str(exc), 200) or type(exc).__name__))
    return unseen


def _plugin_class():
    distributed = _distributed()

    class CheckerPlugin(distributed.WorkerPlugin):
        """Builds the run's state (the batch's checker) once per worker process, from the setup it carries."""

        def __init__(self, name: str, setup: WorkerSetup):
            self.name, self.build = name, setup

        # This class is made at run time, so it is pickled by value: it reaches the package's own
        # per-process state through an import on the worker, never through its globals (a copy there).

        def setup(self, worker) -> None:
            from plancheck.execution import process
            from plancheck.execution import worker as state
            from plancheck.execution.partition import MAX_PARTITIONS

            # One Arrow thread; also overrides a nanny's MALLOC_TRIM_THRESHOLD_ on any `dask worker`.
            process.worker_process(ignore_interrupt=False)
            process.allow_open_files(MAX_PARTITIONS + 64)  # a spill task writes a piece per partition
            state.register(self.name, self.build())

        def teardown(self, worker) -> None:
            from plancheck.execution import worker as state

            state.drop(self.name)

    return CheckerPlugin


# -- the executor ---------------------------------------------------------------------------------

@dataclass
class DaskExecutor:
    """Tasks as Dask futures, results as they complete."""

    client: Any
    token: str
    workers: int
    run_dir: RunDir
    info: dict[str, Any] = field(default_factory=dict)
    remote: bool = True

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        distributed = _distributed()
        phase = getattr(fn, "__name__", "task").strip("_")
        futures = [self.client.submit(_on_worker, self.token, fn, *job, key=f"{phase}-{index:05d}-{self.token}",
                                      pure=False) for index, job in enumerate(jobs)]
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in distributed.as_completed(futures):
                try:
                    result = future.result()
                except distributed.KilledWorker as exc:
                    raise ClusterError(Problem(self.info.get("scheduler", "cluster"), "",
                                               f"task {future.key} was lost with its worker too many times "
                                               f"({shorten(str(exc), 200)}); a worker may be running out of "
                                               "memory")) from None
                yield index[future.key], result
                future.release()
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def parse_address(address: str) -> tuple[str, int | None]:
    """('local', N) for `local:N`, else (address, None)."""
    if address.startswith("local:") or address == "local":
        count = address.partition(":")[2] or str(os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(Problem("--cluster", "", f"expected local:N with N a number of workers, got {address!r}"))
        return "local", int(count)
    if "://" not in address and ":" not in address:
        raise ClusterError(Problem("--cluster", "", f"expected a scheduler address (tcp://host:8786) or local:N, "
                                                    f"got {address!r}"))
    return address, None


def cluster_executor(address: str, work_dir: str | None = None, shared: tuple[str, ...] = (),
                     on_connect: Callable[[dict[str, Any]], None] | None = None) -> ExecutorFactory:
    """An ExecutorFactory running the batch on the Dask cluster at `address` (or a LocalCluster for `local:N`).

    `shared` are paths or URLs every worker must see (the feed): checked, with the work directory, before any work.
    """
    where, local_workers = parse_address(address)
    distributed = _distributed()

    @contextmanager
    def make(setup: WorkerSetup, partitions: int) -> Iterator[Executor]:
        run_dir: RunDir | None = None
        try:
            with _connect(distributed, where, local_workers) as client:
                names = list(client.scheduler_info(n_workers=-1)["workers"])
                token = f"plancheck-{uuid.uuid4().hex[:12]}"
                run_dir = _new_run_dir(work_dir)
                _check_paths(client, run_dir, shared, where)
                plugin = _plugin_class()(token, setup.portable())
                try:
                    client.register_plugin(plugin)
                except Exception as exc:  # the plugin's setup failed on a worker: say why
                    raise ClusterError(Problem(where, "", f"the workers could not build the checker: "
                                                          f"{shorten(str(exc), 300)}")) from None
                info = {"scheduler": client.scheduler.address, "dashboard": client.dashboard_link,
                        "workers": len(names), "work_dir": run_dir.path}
                if on_connect:
                    on_connect(info)
                try:
                    yield DaskExecutor(client, token, len(names), run_dir, info)
                finally:
                    try:
                        client.unregister_worker_plugin(token)
                    except Exception:  # noqa: BLE001 - best effort: the workers drop it when they go
                        pass
        finally:
            # After the client (and a LocalCluster's workers) are gone: a task still running when
            # the run stopped may write into the run directory until then.
            if run_dir is not None:
                _remove(run_dir)

    return make


@contextmanager
def _connect(distributed, where: str, local_workers: int | None):
    """A client of a fresh LocalCluster, or of the scheduler at `where`; a clear error if it cannot be reached."""
    import dask

    if local_workers is not None:
        scratch = tempfile.mkdtemp(prefix="plancheck-dask-")  # the workers' own files, removed with them
        try:
            with dask.config.set({**LOCAL_CONFIG, "temporary-directory": scratch}):
                cluster = distributed.LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", local_directory=scratch)
            try:
                with distributed.Client(cluster) as client:
                    yield client
            finally:
                cluster.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    try:
        client = distributed.Client(where, timeout=f"{CONNECT_TIMEOUT}s")
    except (OSError, ValueError, TimeoutError) as exc:
        raise ClusterError(Problem(where, "", f"cannot reach the Dask scheduler: {shorten(str(exc), 200)}")) from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        except (TimeoutError, OSError):
            raise ClusterError(Problem(where, "", f"the Dask scheduler has no workers after {WORKERS_TIMEOUT} s")) \
                from None
        yield client
    finally:
        client.close()


def _remove(run_dir: RunDir, attempts: int = 4, pause: float = 0.5) -> None:
    """Remove the run directory; again a moment later if a remote task that was still running wrote into it."""
    for _ in range(attempts):
        run_dir.remove()
        if not _exists(run_dir):
            return
        time.sleep(pause)


def _exists(run_dir: RunDir) -> bool:
    if isinstance(run_dir, FsspecRunDir):
        try:
            return run_dir._fs().exists(run_dir.path)  # noqa: SLF001
        except OSError:
            return False
    return os.path.exists(run_dir.path)


def _check_paths(client, run_dir: RunDir, shared: tuple[str, ...], where: str) -> None:
    """Every worker sees the feed (a path or a URL) and the run directory (a path), or fail before any work
    naming what it cannot see."""
    paths = [str(p) for p in shared] + ([] if isinstance(run_dir, FsspecRunDir) else [run_dir.path])
    missing = {worker: unseen for worker, unseen in client.run(_sees, paths).items() if unseen}
    if missing:
        worker, unseen = next(iter(missing.items()))
        path, why = unseen[0]
        if path == run_dir.path:
            hint = "give --work-dir a path every worker sees (a shared file system) or an fsspec URL"
        elif _is_url(path):
            hint = (f"{why}; every worker needs the URL's fsspec package (s3fs, gcsfs, adlfs) and the "
                    "credentials the client has")
        else:
            hint = "the feed must be on a path every worker sees, or at a URL they can all read"
        raise ClusterError(Problem(where, "", f"worker {worker} cannot see {path}: {hint}"))


def stderr_line(info: dict[str, Any]) -> str:
    """The line the command line prints when the run is on a cluster."""
    return (f"cluster: {info['scheduler']}, {info['workers']} worker(s), dashboard {info['dashboard']}, "
            f"work dir {info['work_dir']}\n")

