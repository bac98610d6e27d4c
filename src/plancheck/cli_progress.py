"""Progress of a batch run on stderr: a bar on a terminal, plain lines for a cluster run logged to a file."""

from __future__ import annotations

import sys


class ProgressLines:
    """Progress as plain lines on stderr (a cluster run whose stderr is a log, not a terminal): at most one
    every PERIOD seconds, and one when each phase ends."""

    PERIOD = 5.0

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self._last = self._clock()
        self._read = self._checked = self._partitions = self._done = 0

    def _say(self, text: str, force: bool = False) -> None:
        if force or self._clock() - self._last >= self.PERIOD:
            sys.stderr.write(f"progress: {text}\n")
            self._last = self._clock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, rows: int) -> None:
        self._read += rows
        self._say(f"read {self._read:,} rows")

    def start_checking(self, partitions: int) -> None:
        self._partitions = partitions
        self._say(f"read {self._read:,} rows; checking {partitions} partition(s)", force=True)

    def checked(self, rows: int) -> None:
        self._checked += rows
        self._done += 1
        self._say(f"checked {self._done}/{self._partitions} partition(s), {self._checked:,} rows",
                  force=self._done == self._partitions)


class Progress:
    """Rows read and rows checked, with rows per second, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
        self._read = self._progress.add_task("reading feed", total=None, rate="-")
        self._check = None

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def _rate(self, task_id) -> str:
        task = self._progress.tasks[task_id]
        return f"{int(task.completed / task.elapsed):,}" if task.elapsed else "-"

    def read(self, rows: int) -> None:
        self._progress.update(self._read, advance=rows, rate=self._rate(self._read))

    def start_checking(self, partitions: int) -> None:
        total = self._progress.tasks[self._read].completed
        self._progress.update(self._read, total=total)
        self._check = self._progress.add_task("checking rows", total=total, rate="-")

    def checked(self, rows: int) -> None:
        self._progress.update(self._check, advance=rows, rate=self._rate(self._check))


def progress(cluster: bool):
    """The progress a batch run shows: a bar on a terminal, lines for a cluster run, else none."""
    return Progress() if sys.stderr.isatty() else (ProgressLines() if cluster else None)
