"""Freed memory goes back to the system between the phases of a big run (plancheck/memory.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from plancheck.memory import release_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")


def _resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def test_freed_arrow_and_numpy_columns_are_given_back_not_kept_for_the_next_phase():
    """What a census's parsing leaves: 2 MB Arrow and numpy columns, interleaved, all freed. Both allocators keep
    them (the fault: 1 M employees peaked at 1.5-1.9 GB); release_memory hands them back."""
    base = _resident_mb()
    columns = []
    for i in range(60):
        columns.append(pc.add(pa.array(np.arange(250_000, dtype=np.int64)), 1))
        columns.append(np.arange(250_000, dtype=np.int64) + i)
    del columns
    kept = _resident_mb() - base
    release_memory()
    left = _resident_mb() - base
    assert kept > 60, f"the allocators gave back the 240 MB of freed columns by themselves ({kept:.0f} MB kept)"
    assert left < kept / 3, f"{left:.0f} MB of {kept:.0f} MB of freed columns still resident"
