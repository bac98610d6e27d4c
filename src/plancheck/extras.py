"""Optional extras: a feature whose packages are not installed is exit 2 naming what to install, never a traceback.

`require_extra` is called where each feature starts (before any work): `--db`/`--record` and the
history commands, `--html`, `--xlsx`, `serve`, `--cluster`, URLs on S3. `missing_extra` turns a
ModuleNotFoundError that still escapes (an import deeper down) into the same one line.
"""

from __future__ import annotations

import importlib

from plancheck.errors import InputError, Problem

#: The extra (pyproject.toml) that installs each optional top-level package.
EXTRA_OF = {
    "sqlalchemy": "history", "alembic": "history", "psycopg": "history", "platformdirs": "history",
    "jinja2": "history", "xlsxwriter": "history",
    "fastapi": "service", "uvicorn": "service", "starlette": "service", "httptools": "service",
    "distributed": "dask", "dask": "dask",
    "fsspec": "s3", "s3fs": "s3", "aiobotocore": "s3", "botocore": "s3",
}


class MissingExtra(InputError):
    """A feature whose optional packages are not installed (exit status 2)."""


def _problem(feature: str, extra: str, module: str) -> MissingExtra:
    return MissingExtra(Problem(feature, "", f"needs the '{extra}' extra, which is not installed (no module "
                                             f"{module!r}): pip install 'plancheck[{extra}]'"))


def require_extra(extra: str, *modules: str, feature: str) -> None:
    """Import each of `modules`; the first that cannot be imported is a MissingExtra naming `feature` and `extra`."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise _problem(feature, extra, exc.name or module) from None


def missing_extra(exc: ImportError, feature: str = "plancheck") -> MissingExtra | None:
    """The MissingExtra for an import that failed deep inside a command, or None if the module is no extra's."""
    name = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(name)
    return _problem(feature, extra, name) if extra else None
