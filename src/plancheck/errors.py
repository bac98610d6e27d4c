"""Input errors that name where the problem is and what was expected, and short echoes of bad values."""

from __future__ import annotations

from dataclasses import dataclass

#: How much of an offending value a message echoes.
ECHO_CHARS = 80
#: The longest line one problem may write (a safety net over everything a message interpolates).
MESSAGE_CHARS = 1000


def shorten(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` if it is at most `limit` characters, else its start and how long it really was.

    Every message that echoes an input value goes through this, so a 10 MB employee id costs
    a line of stderr, not 10 MB of it.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def shown(value: object, limit: int = ECHO_CHARS) -> str:
    """repr() of a value for a message; a long text is cut before repr() so it never costs its length."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    return shorten(repr(value), limit)


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
        got = f" (got {shorten(self.got)})" if self.got is not None else ""
        return shorten(f"{where}:{field} {self.expected}{got}", MESSAGE_CHARS)


class InputError(Exception):
    """Bad input: carries one or more problems, each with file, line, field and expectation."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):
        # Raised in a worker process (a pool or a Dask cluster), it crosses back by pickle with its problems whole.
        return self.__class__, (self.problems,)


class LimitYearMissing(InputError):
    """A check asked for a year that rules/limits does not cover."""


#: Exit statuses of every command (README "Exit status"): no error finding, error findings, bad input.
EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
