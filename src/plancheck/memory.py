"""Giving freed memory back to the system between the phases of a big run.

Arrow's pool (mimalloc) keeps the pages of freed arrays for reuse, and glibc's malloc keeps freed
numpy buffers in its heap once its mmap threshold has grown past them; neither is reused by the
other, so after a census's text is parsed the process would carry hundreds of MB it no longer
uses into the next phase. `release_memory` hands both back (docs/performance.md, year-end). It is
the one-off counterpart of execution/process.py's `keep_freed_memory`, which batch workers set so
that each partition reuses the last one's blocks: an explicit trim frees pages whatever the
thresholds say, and a worker that calls neither is left as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Return the freed pages of Arrow's pool and of the C heap to the system (a no-op where it cannot)."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
