"""The plan facts of rules/facts/plan.yaml, built for one plan document and plan year."""

from __future__ import annotations

from decimal import Decimal

from plancheck.ages import age_in_months
from plancheck.documents.plan import Plan, SafeHarborDesign, Source, safe_harbor_sources
from plancheck.documents.plan_withdrawals import SourceWithdrawal
from plancheck.facts.enrollment import ENROLLMENT_FACTS, enrollment_facts
from plancheck.facts.safe_harbor import SAFE_HARBOR_FACTS, safe_harbor_facts
from plancheck.money import apply_rate
from plancheck.rulebook.limits import LimitTable

#: Every fact plan_facts returns; rules/facts/plan.yaml declares exactly these (tests/rulebook/test_built_facts.py).
BUILT_FACTS = frozenset({
    "year", "year_has_limits", "year_has_60_63_limit", "allows_pretax", "allows_roth", "allows_after_tax",
    "catch_up_offered", "catch_up_60_63", "after_tax_in_service", "pretax_in_service",
    "pretax_in_service_minimum_age_months", "roth_in_service", "roth_in_service_minimum_age_months",
    "early_withdrawal_age_months", "safe_harbor_in_service_before_59_half", "conversion_allowed",
    "conversion_sources", "conversion_from_after_tax", "conversion_from_roth", "safe_harbor", "has_match",
    "has_nonelective", "max_employer_additions", "limit_415c", "limit_401a17", "schema_errors",
}) | SAFE_HARBOR_FACTS | ENROLLMENT_FACTS


def _open_before(terms: SourceWithdrawal, age: Decimal) -> bool:
    """The source may be withdrawn in service before `age` (no minimum age, or a lower one)."""
    return terms.allowed and (terms.minimum_age is None or terms.minimum_age < age)


def _minimum_months(terms: SourceWithdrawal) -> int:
    """A source's minimum age for in-service withdrawals in whole months (0 when it sets none)."""
    return age_in_months(terms.minimum_age) if terms.minimum_age is not None else 0


def plan_facts(plan: Plan, limits: LimitTable, year: int) -> dict[str, int]:
    """The plan facts of rules/facts/plan.yaml for one document and plan year (exactly BUILT_FACTS)."""
    has_limits = year in limits.years
    year_limits = limits.for_year(year) if has_limits else None
    pay_cap = year_limits.compensation_401a17 if year_limits else 0
    employer = 0
    if plan.match:
        low = 0
        for tier in plan.match.tiers:
            high = apply_rate(pay_cap, tier.up_to_percent)
            employer += apply_rate(high - low, tier.rate)
            low = high
        if plan.match.annual_cap is not None:
            employer = min(employer, plan.match.annual_cap)
    if plan.nonelective:
        employer += apply_rate(pay_cap, plan.nonelective.percent)
    withdrawals = plan.in_service_withdrawals
    conversion = plan.in_plan_roth_conversion
    age_59_half = limits.parameter("early_withdrawal_age")
    early_safe_harbor = any(_open_before(withdrawals.for_source(s), age_59_half) for s in safe_harbor_sources(plan))
    converts_after_tax = Source.after_tax in conversion.sources
    return {
        "year": year,
        "year_has_limits": int(has_limits),
        "year_has_60_63_limit": int(bool(year_limits and year_limits.catch_up_60_63 is not None)),
        "allows_pretax": int(plan.contributions.pretax),
        "allows_roth": int(plan.contributions.roth),
        "allows_after_tax": int(plan.contributions.after_tax),
        "catch_up_offered": int(plan.catch_up.offered),
        "catch_up_60_63": int(plan.catch_up.age_60_63),
        "after_tax_in_service": int(withdrawals.after_tax.allowed),
        "pretax_in_service": int(withdrawals.pretax.allowed),
        "pretax_in_service_minimum_age_months": _minimum_months(withdrawals.pretax),
        "roth_in_service": int(withdrawals.roth.allowed),
        "roth_in_service_minimum_age_months": _minimum_months(withdrawals.roth),
        "early_withdrawal_age_months": age_in_months(age_59_half),
        "safe_harbor_in_service_before_59_half": int(early_safe_harbor),
        "conversion_allowed": int(conversion.allowed),
        "conversion_sources": len(conversion.sources),
        "conversion_from_after_tax": int(converts_after_tax),
        "conversion_from_roth": int(Source.roth in conversion.sources),
        "safe_harbor": int(plan.safe_harbor_design is not SafeHarborDesign.none),
        "has_match": int(plan.match is not None),
        "has_nonelective": int(plan.nonelective is not None),
        "max_employer_additions": employer,
        "limit_415c": year_limits.annual_additions_415c if year_limits else 0,
        "limit_401a17": pay_cap,
        "schema_errors": 0,
        **safe_harbor_facts(plan, limits, pay_cap),
        **enrollment_facts(plan, limits, year),
    }
