"""The one way plancheck opens a file it writes: never through a symbolic link, never over a file it did not make.

Every output (staged `--out`, `--rejects`, reports, workbooks, SARIF), every lock file and every
file of a run directory is opened here. A planted `<output>.lock` that is a link to the feed, or
a hard link to it, would otherwise be followed and truncated: here it is refused (exit 2, one line
naming the path) and nothing is written.

* `create` makes a new file: `O_CREAT | O_EXCL | O_NOFOLLOW`, so neither a link nor anything else
  already at the path is opened.
* `open_lock` takes a lock file that may exist (left by a killed run): created as above, or, when one
  is there, opened without following a link and kept only if it is a plain file with one name.
* `open_device` writes a device or pipe the operator named (`/dev/stdout`, `/dev/full`): no create,
  no truncate.
* `sync_file` / `sync_directory`: what makes a renamed file survive a power cut.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from plancheck.errors import InputError, Problem

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
LINK_REFUSED = "is a symbolic link; plancheck never writes through a link (remove it or choose another path)"


class OutputError(InputError):
    """An output that cannot be written (exit status 2)."""


class UnsafeOutput(OutputError):
    """A path plancheck will not write: a link, a file with other names, not a plain file (exit status 2)."""


def cannot_write(name: str, exc: OSError) -> OutputError:
    return OutputError(Problem(name, "", f"cannot write: {exc.strerror or exc}"))


def refused(path: Path | str, reason: str) -> UnsafeOutput:
    return UnsafeOutput(Problem(str(path), "", reason))


def _cannot(path: Path | str, exc: OSError) -> OutputError:
    return cannot_write(str(path), exc)


def is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def create(path: Path | str, mode: int = 0o600) -> int:
    """A new file at `path`, open for writing; refused if anything (a link above all) is already there."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ELOOP) and is_link(Path(path)):
            raise refused(path, LINK_REFUSED) from None
        raise _cannot(path, exc) from None


def create_file(path: Path | str, mode: int = 0o600) -> BinaryIO:
    """`create` as a buffered binary file object."""
    return os.fdopen(create(path, mode), "wb")


def write_new(path: Path | str, data: bytes) -> None:
    """A new file holding `data` (a run directory's pieces)."""
    with create_file(path) as handle:
        handle.write(data)


def open_lock(path: Path) -> int:
    """A lock file open for reading and writing: new, or one a previous run left that is a plain file of its own.

    A link, a file with more than one name (a hard link to the feed) or anything but a plain file
    is refused: taking it over would truncate whatever it points at.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        fd = os.open(path, os.O_RDWR | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP or is_link(path):
            raise refused(path, f"lock file {LINK_REFUSED}") from None
        if exc.errno == errno.ENOENT:  # removed by its owner meanwhile: make it anew
            return open_lock(path)
        raise _cannot(path, exc) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "not a plain file" if not stat.S_ISREG(info.st_mode) else "a file with other names (a hard link)"
        raise refused(path, f"lock file is {what}; plancheck will not take it over (remove it)")
    return fd


def open_device(path: Path) -> BinaryIO:
    """A device or pipe named as an output, written as it is: never created, never truncated."""
    try:
        return os.fdopen(os.open(path, os.O_WRONLY | _CLOEXEC), "wb")
    except OSError as exc:
        raise _cannot(path, exc) from None


def sync_file(fd: int) -> None:
    """The file's data on disk before it is renamed into place (else a power cut can leave it empty)."""
    os.fsync(fd)


def sync_directory(directory: Path) -> None:
    """The directory's entries on disk after a rename, so the new name survives a power cut."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return  # a directory that cannot be opened for reading: the rename stands, unsynced
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems that cannot sync a directory
            raise
    finally:
        os.close(fd)
