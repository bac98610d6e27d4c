"""The fact builders and the fact catalogues name the same facts (BUILT_FACTS), so none is silently zero."""

from __future__ import annotations

import pytest

from plancheck.documents.plan import Plan
from plancheck.documents.withdrawal import WithdrawalRequest
from plancheck.facts import plan as plan_builder
from plancheck.facts import withdrawal as withdrawal_builder
from plancheck.facts.safe_harbor import SAFE_HARBOR_FACTS
from plancheck.facts.withdrawal import request_facts


def test_plan_catalogue_declares_exactly_the_built_facts(rulebook):
    """rules/facts/plan.yaml lists every fact plan_builder.plan_facts builds, and nothing else."""
    assert set(rulebook.catalogues["plan"].facts) == plan_builder.BUILT_FACTS


def test_withdrawal_catalogue_declares_exactly_the_built_facts(rulebook):
    """rules/facts/withdrawal.yaml lists every fact facts.withdrawal.request_facts builds, and nothing else."""
    assert set(rulebook.catalogues["withdrawal"].facts) == withdrawal_builder.BUILT_FACTS


@pytest.mark.parametrize("year", [2024, 2026, 2030])
def test_plan_facts_returns_exactly_the_built_facts(plans, limits, year):
    """Every bundled plan, in a year with limits and one without, yields exactly BUILT_FACTS."""
    for plan in plans.values():
        assert set(plan_builder.plan_facts(plan, limits, year)) == plan_builder.BUILT_FACTS, plan.plan_id


def test_safe_harbor_facts_are_part_of_the_plan_facts():
    """The safe-harbor builder's names are a part of the plan facts, not a set beside them."""
    assert SAFE_HARBOR_FACTS < plan_builder.BUILT_FACTS


@pytest.mark.parametrize("fields", [
    {"source": "pretax", "kind": "in_service_withdrawal", "source_balance": "100.00"},
    {"source": "after_tax", "kind": "rollover_to_roth_ira", "after_tax_basis": "80.00", "after_tax_earnings": "20.00"},
    {"source": "safe_harbor", "kind": "hardship"},
    {"source": "employer_match", "kind": "in_plan_roth_conversion"},
])
def test_request_facts_returns_exactly_the_built_facts(plans, limits, fields):
    """Requests of every shape yield exactly BUILT_FACTS."""
    request = WithdrawalRequest.model_validate({
        "request_id": "R", "plan_id": "acme-mega-backdoor", "employee_id": "E", "birth_date": "1970-01-01",
        "employed": True, "request_date": "2026-01-02", "amount": "50.00", **fields})
    for plan in plans.values():
        assert set(request_facts(request, plan, limits)) == withdrawal_builder.BUILT_FACTS, plan.plan_id


def test_a_plan_without_match_or_nonelective_yields_every_fact(limits):
    """The smallest plan document still yields every fact."""
    plan = Plan.model_validate({"plan_id": "p", "name": "n", "payroll": {"frequency": "monthly"}})
    assert set(plan_builder.plan_facts(plan, limits, 2026)) == plan_builder.BUILT_FACTS
