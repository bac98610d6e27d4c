"""Input errors that name where the problem is and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input: where, which field, what was expected."""

    source: str
    field: str
    expected: str
    line: int | None = None
    got: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        field = f" {self.field}:" if self.field else ""
        got = f" (got {self.got})" if self.got is not None else ""
        return f"{where}:{field} {self.expected}{got}"


class InputError(Exception):
    """Bad input: carries one or more problems, each with file, line, field and expectation."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LimitYearMissing(InputError):
    """A check asked for a year that rules/limits does not cover."""
