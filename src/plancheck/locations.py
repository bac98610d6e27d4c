"""Where a file is: a local path, or a URL on object storage read and written through fsspec.

`batch FEED` and `yearend --feed` read a feed at a URL (documents/feed/source.py); `batch --out`
and `--rejects` write to one (sinks/files.py). `file:///data/x.csv` is the local path it names;
text without `://` is a local path. fsspec and the store's own package (s3fs, gcsfs, adlfs) are
imported only when a URL is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from plancheck.errors import InputError, Problem, shorten

#: What to install for a file at a URL.
INSTALL_HINT = "files at URLs are read and written through fsspec: pip install 'plancheck[s3]' (or fsspec with gcsfs, adlfs)"


def location(text: str | Path) -> Path | str:
    """A Path for a local file (including `file://` URLs), else the URL as given."""
    if isinstance(text, Path) or "://" not in text:
        return Path(text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return text


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url` and the path on it; an InputError naming the URL if it cannot be had."""
    try:
        import fsspec
    except ImportError as exc:
        raise InputError(Problem(url, "", f"{INSTALL_HINT} ({exc})")) from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # the protocol's package is missing, or the URL is malformed
        raise InputError(Problem(url, "", f"cannot use this URL: {shorten(str(exc), 200)}")) from None
