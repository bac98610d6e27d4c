"""Shared fixtures: the bundled rulebook, limits, plans and one engine per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ROOT
from plancheck.checks.ruleset import load_rules
from plancheck.documents.limits import LimitTable
from plancheck.documents.plan import Plan, load_plans
from plancheck.engine import Engine
from plancheck.rulebook.rules import Rulebook


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
