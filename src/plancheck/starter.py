"""`plancheck init DIR`: a starter rules/ and plans/ (copies of this plancheck's own) an administrator edits.

Nothing is overwritten: a target that exists and is not an empty directory stops the command before anything
is written. The copies are made in a hidden directory inside DIR and renamed into place, so a failed or
interrupted init leaves no half-written rules/ behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from plancheck.errors import InputError, Problem
from plancheck.rulebook.resources import packaged

#: What init writes: always the rules and the plans; the sample inputs on request.
STARTER = ("rules", "plans")
SAMPLES = "samples"


@dataclass(frozen=True)
class Written:
    """One directory init wrote: where, from which copy ("checkout" or "bundled"), how many files."""

    kind: str
    path: Path
    origin: str
    files: int


def _taken(path: Path) -> bool:
    """True where writing `path` would overwrite something: a file, a link, or a directory with anything in it."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        return True
    return path.is_dir() and any(path.iterdir())


def _copy(source: Path, target: Path) -> int:
    """Copy the files under `source` to `target`; how many. Contents only: the copies get the administrator's
    umask and times, not the read-only modes an installed package may have."""
    count = 0
    target.mkdir()
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        to = target / path.relative_to(source)
        if path.is_dir():
            to.mkdir(exist_ok=True)
        else:
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, to)
            count += 1
    return count


def write_starter(directory: Path, samples: bool = False) -> list[Written]:
    """Copy rules/ and plans/ (and samples/ with `samples`) into `directory`; what was written, in that order."""
    directory = directory.expanduser().absolute()
    kinds = (*STARTER, SAMPLES) if samples else STARTER
    taken = [f"{kind}/" for kind in kinds if _taken(directory / kind)]
    if taken:
        raise InputError(Problem(str(directory), "", f"{', '.join(taken)} already there and not empty: plancheck init "
                                 "never overwrites (choose another directory, or move them away)"))
    if os.path.lexists(directory) and not directory.is_dir():
        raise InputError(Problem(str(directory), "", "exists and is not a directory"))
    sources = {kind: packaged(kind) for kind in kinds}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".plancheck-init-", dir=directory))
    except OSError as exc:
        raise InputError(Problem(str(directory), "", f"cannot create: {exc.strerror or exc}")) from None
    placed: list[Path] = []
    try:
        written = []
        for kind in kinds:
            source, origin = sources[kind]
            written.append(Written(kind, directory / kind, origin, _copy(source, staging / kind)))
        for item in written:
            os.replace(staging / item.kind, item.path)  # onto an empty directory, or a new name
            placed.append(item.path)
        return written
    except OSError as exc:
        for path in placed:  # all or nothing: take back what this run put in place
            shutil.rmtree(path, ignore_errors=True)
        raise InputError(Problem(str(directory), "", f"cannot write the starter files: {exc.strerror or exc}")) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
