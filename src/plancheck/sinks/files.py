"""Where plancheck writes: checked before any work, never over an input, replaced only when a run completes.

Every command that takes `--out` or `--rejects` goes through this module:

* `check_outputs` refuses, before anything is opened for writing, an output that is a
  directory, a symbolic link, sits in a missing or read-only directory, is the same file as an
  input, or is the same file as another output.
* `replacing` writes to a new temporary file beside the target (opened by safe_open.py: never
  through a link) and renames it into place only when the block completes, after syncing the file
  to disk (and the directory after the rename); on any error, Ctrl-C or SIGTERM the temporary file
  is removed and the old target is left as it was. Devices and pipes (`/dev/full`, `/dev/stdout`)
  are written directly.
* `together` makes the outputs of one run one commit: inside it, `replacing` only stages, and
  nothing is replaced until every output of the block is ready; then the uploads go first, and only
  when every one has succeeded are the local files renamed into place.
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
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from plancheck import safe_open
from plancheck.errors import InputError, Problem, shorten
from plancheck.locations import filesystem
from plancheck.safe_open import LINK_REFUSED, OutputError, cannot_write
from plancheck.sinks.staging import GuardedStream, OutputClosed, renamer, staged, stdout, together, upload_directory

__all__ = ["GuardedStream", "OutputClosed", "OutputError", "OutputLock", "Target", "cannot_write", "check_outputs",
           "input_files", "replacing", "stdout", "together"]

#: Where an output goes: a local path, or a URL on object storage (text).
Target = Path | str


def is_special(path: Path) -> bool:
    """A device, pipe or /proc file descriptor: written in place, since nothing can be renamed over it.

    Under /dev and /proc a link is what the operator named (`/dev/stdout`); elsewhere a link is
    never special: it is refused (`LINK_REFUSED`), not followed to whatever it points at.
    """
    text = str(path)
    if text.startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _final(target: Path) -> Path:
    """Where `target` is: its directory resolved, its own name kept (a link there is replaced, never followed)."""
    return target.absolute().parent.resolve() / target.name


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
    parent = _final(path).parent
    if not parent.is_dir():
        return f"{option}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{option}: directory {parent} is not writable"
    if path.exists() and not safe_open.is_link(path) and not os.access(path, os.W_OK):
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
        if not is_special(path) and safe_open.is_link(path):
            problems.append(Problem(str(path), "", f"{option}: {LINK_REFUSED}"))
            continue
        for other_option, other in given[:index]:
            if isinstance(other, str):
                continue
            if not is_special(path) and (_same_file(path, other) if path.exists() and other.exists()
                                         else path.resolve() == other.resolve()):
                problems.append(Problem(str(path), "", f"{option}: is the same file as {other_option}"))
    if problems:
        raise OutputError(problems)


@contextmanager
def replacing(target: Target | None) -> Iterator[GuardedStream]:
    """A stream for `target` (stdout when None) that replaces it only if the block completes.

    The data goes to a new temporary file in the target's directory, synced before the final
    os.replace, so readers see the old file or the complete new one, never a partial one, even
    after a power cut. For a URL, to a local temporary file uploaded in one piece at the end.
    Inside `together()` nothing is put in place until the whole block completes.
    """
    if target is None:
        yield stdout()
        return
    if isinstance(target, str):
        with _uploading(target) as stream:
            yield stream
        return
    if is_special(target):
        handle = safe_open.open_device(target)
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
    if safe_open.is_link(target):
        raise safe_open.refused(target, LINK_REFUSED)
    final = _final(target)
    with staged(str(target), renamer(target, final), final.parent, f".{final.name}.") as stream:
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

    with staged(url, upload, upload_directory(), "plancheck-upload-", upload=True) as stream:
        yield stream


class OutputLock:
    """An exclusive lock on the outputs of a run: `<output>.lock` beside each, holding the owner's pid.

    The lock is a kernel flock, so it dies with its process: a lock file left by a killed run is
    simply taken over. A second run started while the first holds it fails at once with exit
    status 2 naming the first run's pid.
    """

    def __init__(self, targets: Iterable[Target | None]):
        self._paths = sorted({_final(t).with_name(f"{t.name}.lock") for t in targets
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
            fd = safe_open.open_lock(path)  # never a link, nor a hard link to someone's file
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
                held, there = os.fstat(fd), os.lstat(path)
                same = (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its previous owner removed while we were opening it
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            os.close(fd)
