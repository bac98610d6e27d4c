"""The withdrawal facts of rules/facts/withdrawal.yaml, built for one request and its plan."""

from __future__ import annotations

from plancheck.ages import age_in_months, months_of_age
from plancheck.documents.limits import LimitTable
from plancheck.documents.plan import Plan, Source, safe_harbor_sources
from plancheck.documents.withdrawal import PAID_TO_PARTICIPANT, WithdrawalRequest
from plancheck.facts.safe_harbor import parameter_percent
from plancheck.money import apply_rate

#: Every fact request_facts returns; rules/facts/withdrawal.yaml declares exactly these (tests/test_built_facts.py).
BUILT_FACTS = frozenset({
    "employed", "age_months", "before_59_half", "kind_in_service_withdrawal", "kind_hardship",
    "kind_in_plan_roth_conversion", "kind_rollover_to_roth_ira", "paid_to_participant", "source_elective",
    "source_after_tax", "source_roth", "source_safe_harbor", "plan_allows_source_in_service", "plan_has_minimum_age",
    "plan_minimum_age_months", "plan_has_frequency_limit", "plan_times_per_year", "withdrawals_this_year",
    "plan_allows_hardship_from_source", "plan_allows_conversion", "plan_has_roth", "plan_converts_source", "amount",
    "has_balance", "balance", "has_basis", "after_tax_basis", "after_tax_earnings", "taxable_amount",
    "nontaxable_amount", "additional_tax_72t",
})


def request_facts(request: WithdrawalRequest, plan: Plan, limits: LimitTable) -> dict[str, int]:
    """The withdrawal facts of rules/facts/withdrawal.yaml for one request (exactly BUILT_FACTS)."""
    terms = plan.in_service_withdrawals.for_source(request.source)
    conversion = plan.in_plan_roth_conversion
    has_basis = request.after_tax_basis is not None
    balance = request.source_balance
    if balance is None and has_basis:
        balance = request.after_tax_basis + request.after_tax_earnings
    taxable = 0
    share = request.amount
    if has_basis:
        total = request.after_tax_basis + request.after_tax_earnings
        share = min(request.amount, total)
        taxable = (share * request.after_tax_earnings * 2 + total) // (2 * total) if total else 0
    elif request.source is not Source.roth:
        taxable = request.amount if request.kind in ("in_plan_roth_conversion", "rollover_to_roth_ira") else 0
    age_months = months_of_age(request.birth_date, request.request_date)
    before_59_half = age_months < age_in_months(limits.parameter("early_withdrawal_age"))
    paid = request.kind in PAID_TO_PARTICIPANT
    additional_tax = 0
    if paid and before_59_half:
        additional_tax = apply_rate(taxable, parameter_percent(limits, "early_distribution_additional_tax_percent"))
    return {
        "employed": int(request.employed),
        "age_months": age_months,
        "before_59_half": int(before_59_half),
        "kind_in_service_withdrawal": int(request.kind == "in_service_withdrawal"),
        "kind_hardship": int(request.kind == "hardship"),
        "kind_in_plan_roth_conversion": int(request.kind == "in_plan_roth_conversion"),
        "kind_rollover_to_roth_ira": int(request.kind == "rollover_to_roth_ira"),
        "paid_to_participant": int(paid),
        "source_elective": int(request.source in (Source.pretax, Source.roth)),
        "source_after_tax": int(request.source is Source.after_tax),
        "source_roth": int(request.source is Source.roth),
        "source_safe_harbor": int(request.source in safe_harbor_sources(plan)),
        "plan_allows_source_in_service": int(terms.allowed),
        "plan_has_minimum_age": int(terms.minimum_age is not None),
        "plan_minimum_age_months": age_in_months(terms.minimum_age) if terms.minimum_age is not None else 0,
        "plan_has_frequency_limit": int(terms.times_per_year is not None),
        "plan_times_per_year": terms.times_per_year or 0,
        "withdrawals_this_year": request.withdrawals_this_year,
        "plan_allows_hardship_from_source": int(plan.in_service_withdrawals.hardship.allowed
                                                and request.source in plan.in_service_withdrawals.hardship.sources),
        "plan_allows_conversion": int(conversion.allowed),
        "plan_has_roth": int(plan.contributions.roth),
        "plan_converts_source": int(request.source in conversion.sources),
        "amount": request.amount,
        "has_balance": int(balance is not None),
        "balance": balance or 0,
        "has_basis": int(has_basis),
        "after_tax_basis": request.after_tax_basis or 0,
        "after_tax_earnings": request.after_tax_earnings or 0,
        "taxable_amount": taxable,
        "nontaxable_amount": share - taxable,
        "additional_tax_72t": additional_tax,
    }
