"""Staged outputs and the commit that puts every output of one run in place together.

An output is written to a new temporary file (safe_open.create: never through a link) and synced
to disk. Outside `together()` it is put in place as soon as its block completes. Inside, it waits:
when the `together()` block completes, every upload is made first and, only if every one has
succeeded, the local files are renamed into place (each directory synced after its rename). A
failure anywhere (a write, an upload, bad input, a signal) removes every temporary file and
replaces nothing, so `--out` and `--rejects` are always of the same night.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from plancheck import safe_open
from plancheck.safe_open import cannot_write


class OutputClosed(Exception):
    """The reader of a pipe went away (`plancheck ... | head`). Not an OSError, so no library turns it into
    an exit status of its own; the command line stops quietly."""


class GuardedStream:
    """A binary stream whose write errors name the file (a full disk is exit 2, not a traceback)."""

    def __init__(self, stream: BinaryIO, name: str):
        self._stream = stream
        self.name = name

    def write(self, data: bytes) -> int:
        try:
            return self._stream.write(data)
        except BrokenPipeError:
            raise OutputClosed(self.name) from None
        except OSError as exc:
            raise cannot_write(self.name, exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed(self.name) from None
        except OSError as exc:
            raise cannot_write(self.name, exc) from None


def stdout() -> GuardedStream:
    return GuardedStream(sys.stdout.buffer, "stdout")


@dataclass
class Staged:
    """One output, complete in its temporary file, waiting to be put in place by `finish` (a rename or an upload)."""

    name: str
    temporary: Path
    finish: Callable[[Path], None]
    upload: bool


class Outputs:
    """The outputs staged in one `together()` block."""

    def __init__(self) -> None:
        self.staged: list[Staged] = []
        self.discarded = False

    def discard(self) -> None:
        """Replace nothing when the block ends (the command failed after writing its outputs)."""
        self.discarded = True

    def _remove(self) -> None:
        for item in self.staged:
            item.temporary.unlink(missing_ok=True)
        self.staged.clear()

    def commit(self) -> None:
        """Uploads first, then renames: a failed upload leaves every local output as it was."""
        try:
            for item in (*(i for i in self.staged if i.upload), *(i for i in self.staged if not i.upload)):
                item.finish(item.temporary)
        finally:
            self._remove()


_OPEN: ContextVar[Outputs | None] = ContextVar("plancheck_outputs", default=None)


@contextmanager
def together() -> Iterator[Outputs]:
    """Every output staged inside the block is committed when it completes (none if it fails or is discarded)."""
    outputs = Outputs()
    token = _OPEN.set(outputs)
    try:
        yield outputs
    except BaseException:
        outputs._remove()
        raise
    finally:
        _OPEN.reset(token)
    if outputs.discarded:
        outputs._remove()
    else:
        outputs.commit()


def _new_temporary(directory: Path, prefix: str) -> tuple[BinaryIO, Path]:
    path = directory / f"{prefix}{secrets.token_hex(6)}.partial"
    return safe_open.create_file(path), path


@contextmanager
def staged(name: str, finish: Callable[[Path], None], directory: Path, prefix: str,
           upload: bool = False) -> Iterator[GuardedStream]:
    """A stream into a new temporary file in `directory`; when the block completes the file is synced, closed and
    handed to `finish` (rename it into place, upload it), at once or when the open `together()` block commits."""
    handle, temporary = _new_temporary(directory, prefix)
    stream = GuardedStream(handle, name)
    item = Staged(name, temporary, finish, upload)
    kept = False
    try:
        yield stream
        stream.flush()
        try:
            if not upload:
                safe_open.sync_file(handle.fileno())
            handle.close()
        except OSError as exc:
            raise cannot_write(name, exc) from None
        outputs = _OPEN.get()
        if outputs is not None:
            outputs.staged.append(item)
            kept = True
        else:
            finish(temporary)
    finally:
        if not handle.closed:
            try:
                handle.close()
            except OSError:
                pass
        if not kept:
            temporary.unlink(missing_ok=True)


def renamer(target: Path, final: Path) -> Callable[[Path], None]:
    """Put a staged file in place at `final` (never through a link there), with the old file's mode, and sync the
    directory."""
    def rename(temporary: Path) -> None:
        try:
            if safe_open.is_link(final):
                raise safe_open.refused(target, safe_open.LINK_REFUSED)
            os.chmod(temporary, _file_mode(final))
            os.replace(temporary, final)
            safe_open.sync_directory(final.parent)
        except OSError as exc:
            raise cannot_write(str(target), exc) from None
    return rename


def _file_mode(target: Path) -> int:
    """The mode the finished file should have: the old target's, else what a plain open() would give."""
    try:
        return os.lstat(target).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def upload_directory() -> Path:
    return Path(tempfile.gettempdir())
