"""Where a file is: a local path, or a URL on object storage read and written through fsspec.

`batch FEED` and `yearend --feed` read a feed at a URL (documents/feed/source.py); `batch --out`
and `--rejects` write to one (sinks/files.py). `file:///data/x.csv` is the local path it names;
text without `://` is a local path. fsspec and the store's own package (s3fs, gcsfs, adlfs) are
imported only when a URL is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from plancheck.errors import InputError, Problem, shorten

#: What to install for a file at a URL.
INSTALL_HINT = ("files at URLs are read and written through fsspec: pip install 'plancheck[s3]' "
                "(or fsspec with gcsfs, adlfs)")


def location(text: str | Path) -> Path | str:
    """A Path for a local file (including `file://` URLs), else the URL as given."""
    if isinstance(text, Path) or "://" not in text:
        return Path(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return text


#: Packages whose exceptions mean the store could not be used (no credentials, the network, permissions).
STORE_PACKAGES = frozenset({"botocore", "aiobotocore", "s3fs", "boto3", "gcsfs", "google", "adlfs", "azure",
                            "aiohttp", "fsspec", "requests", "urllib3"})


@contextmanager
def store_errors(where: str, doing: str = "read") -> Iterator[None]:
    """Turn an OSError, or an error of the store's own package, into an InputError naming `where`: a night's
    batch says which feed or output could not be reached and why, instead of a traceback."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError) or is_store_error(exc):
            text = shorten(str(exc) or type(exc).__name__, 200)
            raise InputError(Problem(where, "", f"cannot {doing} it: {text}")) from None
        raise


def is_store_error(exc: BaseException) -> bool:
    """An exception of the store's own package (what fsspec does not turn into an OSError)."""
    return type(exc).__module__.split(".")[0] in STORE_PACKAGES


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url` and the path on it; an InputError naming the URL if it cannot be had."""
    if urlsplit(url).scheme in ("s3", "s3a"):
        from plancheck.extras import require_extra
        require_extra("s3", "fsspec", "s3fs", feature=url)
    try:
        import fsspec
    except ImportError as exc:
        raise InputError(Problem(url, "", f"{INSTALL_HINT} ({exc})")) from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # the protocol's package is missing, or the URL is malformed
        raise InputError(Problem(url, "", f"cannot use this URL: {shorten(str(exc), 200)}")) from None
