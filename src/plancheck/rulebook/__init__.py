"""The rulebook: the law as rules/ writes it, loaded in one place.

Rule files and fact catalogues (rules.py) in the condition language (conditions.py), the
yearly dollar limits (limits.py) and the other figures of the law (parameters.py). `load`
reads a rules directory into one `Law`; checks/ruleset.py holds it to the facts the code builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from plancheck.rulebook.limits import LimitTable
    from plancheck.rulebook.parameters import Parameter
    from plancheck.rulebook.rules import Rulebook


class Law(NamedTuple):
    """A rules directory: its rules, and its limits with the parameters beside them."""

    rules: Rulebook
    limits: LimitTable

    @property
    def parameters(self) -> Mapping[str, Parameter]:
        return self.limits.parameters


def load(rules_dir: Path, built_facts: dict[str, frozenset[str]] | None = None) -> Law:
    """Load rules/facts, rules/checks, rules/limits and rules/parameters; InputError naming every problem.

    With `built_facts` (the facts the code builds, per subject) the rules are held to them before the
    limits are read: a catalogue that declares a fact the code does not build is the first error.
    """
    from plancheck.rulebook.limits import load_limits
    from plancheck.rulebook.rules import check_built_facts, load_rulebook

    rulebook = load_rulebook(rules_dir)
    if built_facts is not None:
        check_built_facts(rulebook, built_facts)
    return Law(rulebook, load_limits(rules_dir / "limits"))
