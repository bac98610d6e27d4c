"""A run's directory: where its spill pieces and per-partition outputs live, seen by every worker.

Every temporary file of a run lives in one run directory, `plancheck-run-*` under the system
temporary directory (or a cluster's work directory, a shared path or an fsspec URL), which is
removed however the run ends.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


@dataclass
class RunDir:
    """Where a run's spill pieces and per-partition outputs live: a directory every worker process sees.

    A cluster may run a task twice (its worker was lost): with `per_attempt` each attempt names
    its files apart, so a late first attempt can never overwrite what the run goes on with.
    Subclasses keep the files elsewhere (an fsspec URL: FsspecRunDir) and stage them per task.
    """

    path: str
    per_attempt: bool = False

    def attempt(self) -> str:
        """A suffix for the names of one task attempt's files."""
        return f"-{uuid.uuid4().hex[:8]}" if self.per_attempt else ""

    @contextmanager
    def writable(self) -> Iterator[str]:
        """A local directory a task writes its files into; `keep` each one."""
        yield self.path

    def keep(self, local: str) -> str:
        """A file a task wrote into `writable()`, as the run will name it."""
        return local

    @contextmanager
    def readable(self, paths: list[str]) -> Iterator[list[str]]:
        """The run's files as local paths, for one task."""
        yield paths

    def open(self, path: str) -> BinaryIO:
        return open(path, "rb")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class FsspecRunDir(RunDir):
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
