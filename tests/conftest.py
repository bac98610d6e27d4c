"""Shared fixtures: the bundled rulebook, limits, plans and one engine per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import ROOT
from plancheck.checks.ruleset import load_rules
from plancheck.documents.plan import Plan, load_plans
from plancheck.engine import Engine
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rulebook

# The suite checks the checkout's rules/ and plans/: a PLANCHECK_HOME in the developer's shell must not replace them.
os.environ.pop("PLANCHECK_HOME", None)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def rulebook() -> Rulebook:
    return load_rules(ROOT / "rules")[0]


@pytest.fixture(scope="session")
def limits() -> LimitTable:
    return load_rules(ROOT / "rules")[1]


@pytest.fixture(scope="session")
def engine(rulebook: Rulebook) -> Engine:
    return Engine(rulebook)


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    return {pid: plan for pid, (plan, _) in load_plans(ROOT / "plans").items()}


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(rules, plans): copies of the bundled rules and plans that a test may edit (a service's reload tests)."""
    import shutil

    rules, plans = tmp_path / "rules", tmp_path / "plans"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(ROOT / "plans", plans)
    return rules, plans
