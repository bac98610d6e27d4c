"""Where the bundled rules/, plans/ and samples/ live, and loading them once per process."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from .limits import LimitTable, load_limits
from .rulebook import Rulebook, check_built_facts, load_rulebook


def project_root() -> Path:
    """The checkout holding rules/: $PLANCHECK_HOME, else the nearest parent of this package that has one."""
    env = os.environ.get("PLANCHECK_HOME")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "rules" / "limits").is_dir():
            return parent
    return Path.cwd()


def default_rules_dir() -> Path:
    return project_root() / "rules"


def default_plans_dir() -> Path:
    return project_root() / "plans"


def built_facts() -> dict[str, frozenset[str]]:
    """The facts the code builds for each subject (what rules/facts/<subject>.yaml must declare)."""
    from .facts.yearend import BUILT_FACTS as yearend
    from .period_facts import BUILT_FACTS as period
    return {"period": period, "yearend": yearend}


@lru_cache(maxsize=8)
def load_rules(rules_dir: Path) -> tuple[Rulebook, LimitTable]:
    """The rulebook and the limit table of a rules directory, loaded once and checked against the code."""
    rulebook = load_rulebook(rules_dir)
    check_built_facts(rulebook, built_facts())
    return rulebook, load_limits(rules_dir / "limits")
