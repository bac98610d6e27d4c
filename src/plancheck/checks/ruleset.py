"""The rules a check runs with: the rulebook and limits of a rules directory, loaded once per process
and held to the facts the code builds."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from plancheck import rulebook


def built_facts() -> dict[str, frozenset[str]]:
    """The facts the code builds for each subject (what rules/facts/<subject>.yaml must declare)."""
    from plancheck.facts.period import BUILT_FACTS as period
    from plancheck.facts.plan import BUILT_FACTS as plan
    from plancheck.facts.withdrawal import BUILT_FACTS as withdrawal
    from plancheck.facts.yearend import BUILT_FACTS as yearend
    return {"period": period, "withdrawal": withdrawal, "plan": plan, "yearend": yearend}


@lru_cache(maxsize=8)
def load_rules(rules_dir: Path) -> rulebook.Law:
    """The law of a rules directory (rulebook, limits, parameters: `rulebook, limits = load_rules(...)`), loaded
    once and held to the facts the code builds."""
    return rulebook.load(rules_dir, built_facts())
