"""The batch on a Dask cluster: the same two phases (checks/batch/run.py) as Dask tasks.

`cluster_executor("tcp://scheduler:8786", work_dir)` or `cluster_executor("local:N")` makes the
run's Executor: each spill range and each partition check is one task (`Client.submit`, results
taken with `as_completed`), and a WorkerPlugin builds the checker once per worker process from
the rules' files and the plans it carries (so the workers need plancheck installed, not the
client's rules directory). Spill pieces and per-partition outputs go to a run directory under the
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
from typing import Any, BinaryIO

from plancheck.checks.batch import run
from plancheck.checks.batch.check import Checker, keep_freed_memory
from plancheck.documents.folders import is_editor_artefact
from plancheck.documents.plan import Plan
from plancheck.errors import InputError, Problem, shorten
from plancheck.safe_open import write_new

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


# -- the run directory on object storage ----------------------------------------------------------

@dataclass
class FsspecRunDir(run.RunDir):
    """A run directory at an fsspec URL: each task writes into a local scratch directory and uploads what
    it keeps; reads download into one. The client reads the outputs through fsspec."""

    per_attempt: bool = True
    _client_copies: str | None = field(default=None, repr=False)

    def _fs(self):
        import fsspec

        return fsspec.core.url_to_fs(self.path)[0]

    def make(self) -> None:
        self._fs().makedirs(self.path, exist_ok=True)

    @contextmanager
    def writable(self) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="plancheck-task-") as local:
            yield local

    def keep(self, local: str) -> str:
        url = f"{self.path}/{Path(local).name}"
        self._fs().put_file(local, url)
        return url

    @contextmanager
    def readable(self, paths: list[str]) -> Iterator[list[str]]:
        with tempfile.TemporaryDirectory(prefix="plancheck-task-") as local:
            fs, copies = self._fs(), []
            for url in paths:
                copies.append(str(Path(local) / url.rsplit("/", 1)[-1]))
                fs.get_file(url, copies[-1])
            yield copies

    def open(self, path: str) -> BinaryIO:
        """A partition's output, downloaded first: the client merges up to 1,024 of them at once, and an open
        object-store file holds a read buffer of megabytes."""
        if self._client_copies is None:
            self._client_copies = tempfile.mkdtemp(prefix="plancheck-merge-")
        local = str(Path(self._client_copies) / path.rsplit("/", 1)[-1])
        self._fs().get_file(path, local)
        return open(local, "rb")

    def remove(self) -> None:
        if self._client_copies is not None:
            shutil.rmtree(self._client_copies, ignore_errors=True)
        try:
            self._fs().rm(self.path, recursive=True)
        except (OSError, FileNotFoundError):
            pass


def _is_url(text: str) -> bool:
    return "://" in text


def _new_run_dir(work_dir: str | None) -> run.RunDir:
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
        return run.RunDir(tempfile.mkdtemp(prefix="plancheck-run-", dir=base), per_attempt=True)
    except OSError as exc:
        raise ClusterError(Problem(str(base), "", f"cannot create the run directory there: {exc.strerror}")) from None


# -- on the workers -------------------------------------------------------------------------------

#: The checkers of the runs registered on this worker process, by plugin name.
_CHECKERS: dict[str, Checker] = {}
#: One task at a time per process: durable-rules' engine must not be used from two threads (nthreads > 1).
_LOCK = threading.Lock()


def _on_worker(token: str, fn: Callable[..., Any], *job: Any) -> Any:
    """Run one task of the run `token` with that run's checker as the process's checker."""
    with _LOCK:
        checker = _CHECKERS.get(token)
        if checker is None:
            raise RuntimeError(f"plancheck's worker plugin {token} has not set up this worker")
        run._CHECKER = checker  # noqa: SLF001 - the task functions read the process's checker
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


def _rules_files(rules_dir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(rules_dir)): path.read_bytes() for path in sorted(rules_dir.rglob("*"))
            if path.is_file() and not any(is_editor_artefact(part) for part in path.relative_to(rules_dir).parts)}


def _plugin_class():
    distributed = _distributed()

    class CheckerPlugin(distributed.WorkerPlugin):
        """Builds the run's checker once per worker process, from the rules' files and plans it carries."""

        def __init__(self, name: str, rules: dict[str, bytes], plans: list[Plan], revision: str):
            self.name = name
            self.rules, self.plans, self.revision = rules, plans, revision

        # This class is made at run time, so it is pickled by value: it reaches the module's own
        # _CHECKERS through an import on the worker, never through its globals (a copy there).

        def setup(self, worker) -> None:
            import pyarrow as pa

            from plancheck.checks.batch import cluster
            from plancheck.checks.batch.partition import MAX_PARTITIONS
            from plancheck.checks.batch.run import allow_open_files
            from plancheck.checks.ruleset import load_rules

            pa.set_cpu_count(1)  # the workers already use every core
            keep_freed_memory()  # also overrides a nanny's MALLOC_TRIM_THRESHOLD_ on any `dask worker`
            allow_open_files(MAX_PARTITIONS + 64)  # a spill task writes a piece per partition
            # The rules are loaded from a copy of the client's files, removed at once: a worker that is
            # killed never runs teardown, and nothing reads the files after loading.
            folder = tempfile.mkdtemp(prefix="plancheck-rules-")
            try:
                for name, data in self.rules.items():
                    path = Path(folder) / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_new(path, data)
                rulebook, limits = load_rules(Path(folder))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            if rulebook.revision != self.revision:
                raise RuntimeError(f"rules revision {rulebook.revision} on the worker, {self.revision} on the client")
            cluster._CHECKERS[self.name] = Checker(rulebook, limits, self.plans)

        def teardown(self, worker) -> None:
            from plancheck.checks.batch import cluster

            cluster._CHECKERS.pop(self.name, None)

    return CheckerPlugin


# -- the executor ---------------------------------------------------------------------------------

@dataclass
class DaskExecutor:
    """Tasks as Dask futures, results as they complete."""

    client: Any
    token: str
    workers: int
    run_dir: run.RunDir
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
                     on_connect: Callable[[dict[str, Any]], None] | None = None) -> run.ExecutorFactory:
    """An ExecutorFactory running the batch on the Dask cluster at `address` (or a LocalCluster for `local:N`).

    `shared` are paths or URLs every worker must see (the feed): checked, with the work directory, before any work.
    """
    where, local_workers = parse_address(address)
    distributed = _distributed()

    @contextmanager
    def make(rules_dir: Path, plans: list[Plan], partitions: int) -> Iterator[run.Executor]:
        from plancheck.checks.ruleset import load_rules

        revision = load_rules(rules_dir)[0].revision
        run_dir: run.RunDir | None = None
        try:
            with _connect(distributed, where, local_workers) as client:
                names = list(client.scheduler_info(n_workers=-1)["workers"])
                token = f"plancheck-{uuid.uuid4().hex[:12]}"
                run_dir = _new_run_dir(work_dir)
                _check_paths(client, run_dir, shared, where)
                plugin = _plugin_class()(token, _rules_files(rules_dir), plans, revision)
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


def _remove(run_dir: run.RunDir, attempts: int = 4, pause: float = 0.5) -> None:
    """Remove the run directory; again a moment later if a remote task that was still running wrote into it."""
    for _ in range(attempts):
        run_dir.remove()
        if not _exists(run_dir):
            return
        time.sleep(pause)


def _exists(run_dir: run.RunDir) -> bool:
    if isinstance(run_dir, FsspecRunDir):
        try:
            return run_dir._fs().exists(run_dir.path)  # noqa: SLF001
        except OSError:
            return False
    return os.path.exists(run_dir.path)


def _check_paths(client, run_dir: run.RunDir, shared: tuple[str, ...], where: str) -> None:
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

