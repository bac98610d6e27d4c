"""Where plancheck writes: checked before any work, never over an input, replaced only when a run completes.

Every command that takes `--out` or `--rejects` goes through this module:

* `check_outputs` refuses, before anything is opened for writing, an output that is a
  directory, sits in a missing or read-only directory, is the same file as an input, or is the
  same file as another output.
* `replacing` writes to a temporary file beside the target and renames it into place only when
  the block completes; on any error, Ctrl-C or SIGTERM the temporary file is removed and the old
  target is left as it was. Devices and pipes (`/dev/full`, `/dev/stdout`) are written directly.
* `OutputLock` keeps two runs from writing the same outputs at once.
* A write that fails (a full disk) becomes an `OutputError` naming the file and the OS error.

An output may also be a URL on object storage (a `str`; a local output is a `Path`, see
locations.py): it is checked for a bucket that exists, written to a local temporary file and
uploaded in one PUT when the block completes, so the object appears whole or not at all. Object
stores have no locks: two runs writing the same URL each leave a whole object, the last one wins.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from plancheck.errors import InputError, Problem, shorten
from plancheck.locations import filesystem

#: Where an output goes: a local path, or a URL on object storage (text).
Target = Path | str


class OutputError(InputError):
    """An output that cannot be written (exit status 2)."""


class OutputClosed(Exception):
    """The reader of a pipe went away (`plancheck ... | head`). Not an OSError, so no library turns it into
    an exit status of its own; the command line stops quietly."""


def cannot_write(name: str, exc: OSError) -> OutputError:
    return OutputError(Problem(name, "", f"cannot write: {exc.strerror or exc}"))


def is_special(path: Path) -> bool:
    """A device, pipe or /proc file descriptor: written in place, since nothing can be renamed over it."""
    text = str(path)
    if text.startswith(("/dev/", "/proc/")):
        return True
    try:
        return path.exists() and not path.is_file() and not path.is_dir()
    except OSError:
        return False


def input_files(paths: Iterable[Path | None], suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Existing files among `paths`, directories expanded to the files in their whole tree."""
    found: list[Path] = []
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file() and (suffixes is None or p.suffix.lower() in suffixes))
        elif path.exists():
            found.append(path)
    return found


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _location_problem(option: str, path: Path) -> str | None:
    """Why `path` cannot be written, or None."""
    if path.is_dir():
        return f"{option}: is a directory"
    parent = path.resolve().parent
    if not parent.is_dir():
        return f"{option}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{option}: directory {parent} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{option}: file is not writable"
    return None


def _url_problem(option: str, url: str) -> str | None:
    """Why an object cannot be written at `url`, or None: the store's package missing, no such bucket, a folder."""
    try:
        fs, path = filesystem(url)
    except InputError as exc:
        return f"{option}: {exc.problems[0].expected}"
    bucket = path.split("/", 1)[0]
    try:
        if path.endswith("/") or fs.isdir(path):
            return f"{option}: is a folder; name the object to write"
        if not fs.exists(bucket):
            return f"{option}: {bucket} does not exist"
    except Exception as exc:  # noqa: BLE001 - whatever the store's package raises (credentials, network), said
        return f"{option}: cannot reach it: {shorten(str(exc) or type(exc).__name__, 200)}"
    return None


def check_outputs(outputs: dict[str, Target | None], inputs: list[Target]) -> None:
    """Refuse unusable outputs before any work starts: one problem per bad output, exit status 2.

    `outputs` maps an option name (`--out`) to its path or URL (None: not given); `inputs` are
    every file the command will read (a feed may be a URL).
    """
    problems: list[Problem] = []
    given = [(option, path) for option, path in outputs.items() if path is not None]
    for index, (option, path) in enumerate(given):
        if isinstance(path, str):
            reason = _url_problem(option, path)
            if reason is None and path in inputs:
                reason = f"{option}: is an input of this run; writing it would destroy it"
            same = next((other_option for other_option, other in given[:index] if other == path), None)
            if reason is None and same is not None:
                reason = f"{option}: is the same object as {same}"
            if reason:
                problems.append(Problem(path, "", reason))
            continue
        inputs_here = [source for source in inputs if isinstance(source, Path)]
        if not is_special(path):
            reason = _location_problem(option, path)
            if reason:
                problems.append(Problem(str(path), "", reason))
                continue
        if path.exists():
            clash = next((source for source in inputs_here if _same_file(path, source)), None)
            if clash is not None:
                problems.append(Problem(str(path), "", f"{option}: is an input of this run ({clash}); "
                                                       "writing it would destroy it"))
                continue
        for other_option, other in given[:index]:
            if isinstance(other, str):
                continue
            if not is_special(path) and (_same_file(path, other) if path.exists() and other.exists()
                                         else path.resolve() == other.resolve()):
                problems.append(Problem(str(path), "", f"{option}: is the same file as {other_option}"))
    if problems:
        raise OutputError(problems)


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


def _file_mode(target: Path) -> int:
    """The mode the finished file should have: the old target's, else what a plain open() would give."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextmanager
def replacing(target: Target | None) -> Iterator[GuardedStream]:
    """A stream for `target` (stdout when None) that replaces it only if the block completes.

    The data goes to a temporary file in the target's directory, so the final os.replace is
    atomic: readers see the old file or the complete new one, never a partial one. For a URL,
    to a local temporary file uploaded in one piece at the end.
    """
    if target is None:
        yield stdout()
        return
    if isinstance(target, str):
        with _uploading(target) as stream:
            yield stream
        return
    if is_special(target):
        try:
            handle = open(target, "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise cannot_write(str(target), exc) from None
        stream = GuardedStream(handle, str(target))
        try:
            yield stream
            stream.flush()
        finally:
            try:
                handle.close()
            except OSError:
                pass
        return
    final = target.resolve()

    def rename(temporary: Path) -> None:
        try:
            os.chmod(temporary, _file_mode(final))
            os.replace(temporary, final)
        except OSError as exc:
            raise cannot_write(str(target), exc) from None

    with _staged(str(target), rename, dir=final.parent, prefix=f".{final.name}.") as stream:
        yield stream


@contextmanager
def _uploading(url: str) -> Iterator[GuardedStream]:
    """A stream whose data becomes the object at `url` only if the block completes (one upload at the end)."""
    try:
        fs, path = filesystem(url)
    except InputError as exc:
        raise OutputError(exc.problems) from None

    def upload(temporary: Path) -> None:
        try:
            fs.put_file(str(temporary), path)
        except Exception as exc:  # noqa: BLE001 - the store's own errors (permissions, network), said
            raise OutputError(Problem(url, "", f"cannot upload: {shorten(str(exc) or type(exc).__name__, 200)}")) \
                from None

    with _staged(url, upload, prefix="plancheck-upload-") as stream:
        yield stream


@contextmanager
def _staged(name: str, finish: Callable[[Path], None], **where: Any) -> Iterator[GuardedStream]:
    """A stream into a new temporary file (`where`: tempfile's dir and prefix); when the block completes, the
    closed file is handed to `finish` (rename it into place, upload it). It is removed whatever happens."""
    try:
        handle = tempfile.NamedTemporaryFile(suffix=".partial", delete=False, **where)
    except OSError as exc:
        raise cannot_write(name, exc) from None
    stream = GuardedStream(handle, name)
    temporary = Path(handle.name)
    try:
        yield stream
        stream.flush()
        try:
            handle.close()
        except OSError as exc:
            raise cannot_write(name, exc) from None
        finish(temporary)
    finally:
        if not handle.closed:
            try:
                handle.close()
            except OSError:
                pass
        temporary.unlink(missing_ok=True)


class OutputLock:
    """An exclusive lock on the outputs of a run: `<output>.lock` beside each, holding the owner's pid.

    The lock is a kernel flock, so it dies with its process: a lock file left by a killed run is
    simply taken over. A second run started while the first holds it fails at once with exit
    status 2 naming the first run's pid.
    """

    def __init__(self, targets: Iterable[Target | None]):
        self._paths = sorted({Path(f"{t.resolve()}.lock") for t in targets
                              if isinstance(t, Path) and not is_special(t)})
        self._held: list[tuple[Path, int]] = []

    def __enter__(self) -> OutputLock:
        try:
            for path in self._paths:
                self._held.append((path, self._take(path)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for path, fd in reversed(self._held):
            path.unlink(missing_ok=True)
            os.close(fd)
        self._held.clear()

    @staticmethod
    def _take(path: Path) -> int:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise cannot_write(str(path), exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = os.read(fd, 32).decode("ascii", errors="replace").strip() or "unknown"
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise cannot_write(str(path), exc) from None
                raise OutputError(Problem(str(path), "", f"another plancheck run (pid {owner}) is writing these "
                                                         "outputs; wait for it or choose other --out/--rejects")) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its previous owner removed while we were opening it
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            os.close(fd)
