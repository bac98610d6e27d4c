"""Where a feed's bytes are: a local path, or an fsspec URL on object storage.

A feed given as `s3://bucket/feeds/2026-11-23.csv` (or `gs://`, `abfs://`, `https://`, any protocol
fsspec knows) is read through fsspec: byte ranges of a CSV and row groups of a Parquet file, by the
main process and by each worker alike, so a cluster's workers read it where it lies and need no
shared file system. The protocol's own package does the talking (`s3fs` for `s3://`, `gcsfs` for
`gs://`, `adlfs` for `abfs://`), configured the way that package is: for S3 the usual AWS
environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, ...) or fsspec's own
`FSSPEC_S3_*` settings, on the client and on every worker.

`file:///data/feed.csv` names a local file and is read as the path it names. Everything else that
has no `://` is a local path.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from plancheck.locations import filesystem, location, store_errors

#: Read size of object-store files: a CSV block is 16 MB, so reads are never split into small requests.
BLOCK_SIZE = 16 << 20


@dataclass(frozen=True)
class Source:
    """A feed's location: `local` (a Path) or `url` (an fsspec URL), exactly one of them."""

    local: Path | None = None
    url: str | None = None

    @classmethod
    def of(cls, where: str | Path | Source) -> Source:
        if isinstance(where, Source):
            return where
        found = location(where)
        return cls(local=found) if isinstance(found, Path) else cls(url=found)

    @property
    def name(self) -> str:
        """The file's name, without folders."""
        if self.local is not None:
            return self.local.name
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def location(self) -> Path | str:
        """The path, or the URL (how sinks/files.py names an input an output must not be)."""
        return self.local if self.local is not None else self.url

    def __str__(self) -> str:
        return str(self.local) if self.local is not None else self.url

    def for_workers(self) -> str:
        """How another process names it: an absolute path (its current directory may not be ours), or the URL."""
        return str(self.local.resolve()) if self.local is not None else self.url

    # -- reading -----------------------------------------------------------------------------

    def _fs(self) -> tuple[Any, str]:
        return filesystem(self.url)

    def info(self) -> dict[str, Any]:
        """`is_file`, `size` and what identifies this version of it (`version`); an InputError naming a URL that
        cannot be reached (a local file's OSError is the caller's)."""
        if self.local is not None:
            if not self.local.is_file():
                return {"is_file": False}
            stat = self.local.stat()
            return {"is_file": True, "size": stat.st_size, "version": f"{stat.st_size}|{stat.st_mtime_ns}"}
        fs, path = self._fs()
        with store_errors(self.url, "reach"):
            fs.invalidate_cache(path)  # fsspec keeps listings: the version must be the store's now (Feed.unchanged)
            try:
                info = fs.info(path)
            except FileNotFoundError:
                return {"is_file": False}
        if info.get("type") != "file":
            return {"is_file": False}
        tag = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified",
                                           "last_modified") if info.get(k) is not None), "")
        return {"is_file": True, "size": int(info["size"]), "version": f"{info['size']}|{tag}"}

    def open(self, sequential: bool = True) -> BinaryIO:
        """The file, binary and seekable (close it when done). `sequential` reads (a CSV's blocks) go straight
        to the store; others (a Parquet file's footer and column chunks) through a read-ahead cache."""
        if self.local is not None:
            return self.local.open("rb")
        fs, path = self._fs()
        with store_errors(self.url, "open"):
            return fs.open(path, "rb", block_size=BLOCK_SIZE, cache_type="none" if sequential else "readahead")

    def errors(self, doing: str = "read") -> AbstractContextManager[None]:
        """A context in which a failed read (an OSError, or the store's own error) is an InputError naming the feed."""
        return store_errors(str(self), doing)

    def sha256(self) -> tuple[str, int]:
        """The content's SHA-256 and size, read in 1 MiB blocks."""
        digest, size = hashlib.sha256(), 0
        with self.errors(), self.open() as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size
