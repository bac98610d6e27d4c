"""The documents of a folder (rules/checks/<subject>/, rules/limits/, rules/parameters/, plans/), without what editors leave.

An administrator edits rule and plan files in place. Editors leave files beside them: Emacs a lock
`.#name.yaml` (a symbolic link to a file that does not exist) and autosaves `#name.yaml#`, Vim
`.name.yaml.swp`, many `name.yaml~`, macOS `._name.yaml`. Such files are not documents: hidden
files (a name starting with `.`), `#...#` autosaves and `~` backups are skipped, so a file open in
an editor never stops a run.

A file named like a document that cannot be read as one is exit 2 naming it, never skipped: a
symbolic link whose target does not exist (a rule linked from a share that is not mounted would
otherwise silently drop out of every check), or anything but a plain file (a directory, a pipe
that would block the read).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from plancheck.errors import InputError, Problem


def is_editor_artefact(name: str) -> bool:
    """A hidden file, an editor's lock, swap or autosave file, or a backup: never a document."""
    return name.startswith((".", "#")) or name.endswith(("~", "#"))


def document_files(directory: Path, suffixes: tuple[str, ...] = (".yaml",)) -> list[Path]:
    """The files of `directory` whose suffix is one of `suffixes`, sorted; editors' files skipped; a dangling link
    or a non-file among them is an InputError naming each."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise InputError(Problem(str(directory), "", "is not a directory")) from None
    except OSError as exc:
        raise InputError(Problem(str(directory), "", f"cannot read the directory: {exc.strerror or exc}")) from None
    found: list[Path] = []
    problems: list[Problem] = []
    for path in entries:
        if is_editor_artefact(path.name) or path.suffix.lower() not in suffixes:
            continue
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            problems.append(Problem(str(path), "", f"is a symbolic link to {os.readlink(path)}, which does not exist "
                                                   "(remove the link or restore its target)"))
            continue
        except OSError as exc:
            problems.append(Problem(str(path), "", f"cannot read it: {exc.strerror or exc}"))
            continue
        if not stat.S_ISREG(mode):
            problems.append(Problem(str(path), "", "is not a plain file"))
            continue
        found.append(path)
    if problems:
        raise InputError(problems)
    return found
