"""Settings of a process that runs a batch's tasks: open files, glibc's malloc, Arrow's threads."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import signal

import pyarrow as pa


def allow_open_files(count: int) -> None:
    """A spill task holds a file open per partition, and so does the merge (up to MAX_PARTITIONS, 1,024): raise
    the soft limit on open files toward the hard one where it is lower (1,024 is a common default)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def keep_freed_memory() -> None:
    """Let the C library keep freed memory for reuse instead of handing it back to the kernel.

    Checking a partition allocates some sixty int64 columns of about a megabyte each. glibc
    returns such blocks to the kernel when they are freed, so the next partition faults them in
    again, a zeroed page at a time: about a fifth of the facts phase. With the trim and mmap
    thresholds raised (mallopt M_TRIM_THRESHOLD, M_MMAP_THRESHOLD) the blocks are reused; peak
    memory is unchanged, since a worker already held them at its peak. Nothing happens where the
    C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_mmap_threshold, 1 << 30)


def worker_process(ignore_interrupt: bool = True) -> None:
    """A worker process of a pool or cluster: one Arrow thread (the workers already use every core), freed memory
    kept. A local pool's workers ignore Ctrl-C: the main process decides, and stops them (a worker interrupted on
    its own would print a traceback)."""
    if ignore_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    pa.set_cpu_count(1)
    keep_freed_memory()
