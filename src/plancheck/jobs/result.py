"""What one job returns: everything the runner needs to write, record and answer, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plancheck.errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK


@dataclass
class Common:
    """The parameters every checking job shares: where rules and plans are, where its outputs go, its history."""

    rules_dir: Path
    plans_dir: Path | None = None
    out: Path | str | None = None
    db: str | None = None
    record: bool = False
    html: Path | str | None = None
    xlsx: Path | str | None = None

    def rules(self):
        """The rulebook and the limits of `rules_dir`."""
        from plancheck.checks.ruleset import load_rules
        return load_rules(self.rules_dir)

    @property
    def recorded(self) -> bool:
        """Recorded with --record, or because a report (--html, --xlsx) is asked for."""
        return self.record or bool(self.html or self.xlsx)


def rules_dir(given: Path | None) -> Path:
    from plancheck.rulebook.resources import default_rules_dir
    return (given or default_rules_dir()).resolve()


def plans_dir(given: Path | None) -> Path:
    from plancheck.rulebook.resources import default_plans_dir
    return (given or default_plans_dir()).resolve()


@dataclass
class JobResult:
    """One run's result. `events` are written in order after the run's findings are recorded: a Finding (anything
    with `as_event`) is recorded in the history on the way, a dict is written as it is; `summary` comes last, with
    the history's counts added."""

    #: The history's name for the run (None: a job never recorded, the rules audit).
    command: str | None
    #: The ruleset revision every event carries (None: not bound).
    revision: str | None
    findings: list
    events: list
    summary: dict[str, Any]
    #: What the run covered, for the history: its plans, its year (or preview date), its input files.
    plan_ids: list[str] = field(default_factory=list)
    year: int | str | None = None
    inputs: list = field(default_factory=list)
    #: The (plan, year) pairs checked, where the history compares year by year.
    covered: list[tuple[str, int]] | None = None
    #: Without a history: whether an error finding makes the exit status 1 (default: any error finding).
    errors: bool | None = None
    #: Something could not be checked (a year without limits): exit status 2 once the outputs are written.
    unchecked: bool = False
    #: `--out` as a document built from the final summary (text, SARIF) instead of JSON lines.
    document: Callable[[dict[str, Any]], bytes] | None = None
    #: Other outputs: (target, write(stream)), committed with `--out`.
    files: list[tuple[Any, Callable[[Any], None]]] = field(default_factory=list)
    #: Added to the summary the history keeps (not written to the events).
    kept: dict[str, Any] = field(default_factory=dict)
    #: Recorded when PLANCHECK_DB is set (an election is recorded only when asked: --db, --record).
    env_opts_in: bool = True
    #: Said on stderr once the outputs are committed, given the final summary.
    after: Callable[[dict[str, Any]], None] | None = None

    def status(self, history) -> int:
        """0, 1 for an error finding (with history: one no acknowledgement covers), 2 for an unchecked part."""
        if self.unchecked:
            return EXIT_INPUT
        if history is not None:
            return EXIT_FINDINGS if history.unacknowledged_errors else EXIT_OK
        if self.errors is None:
            from plancheck.findings import has_errors
            return EXIT_FINDINGS if has_errors(self.findings) else EXIT_OK
        return EXIT_FINDINGS if self.errors else EXIT_OK
