"""The withdrawal facts of rules/facts/withdrawal.yaml, built for one request and its plan."""

from __future__ import annotations

from plancheck.ages import age_in_months, months_of_age
from plancheck.documents.plan import Plan, Source, safe_harbor_sources
from plancheck.documents.withdrawal import PAID_TO_PARTICIPANT, WithdrawalRequest
from plancheck.facts.early_distribution import EXCEPTION_FACTS, early_distribution, exception_facts
from plancheck.rulebook.limits import LimitTable

#: Every fact request_facts returns; rules/facts/withdrawal.yaml declares exactly these (tests/rulebook/test_built_facts.py).
BUILT_FACTS = frozenset({
    "employed", "age_months", "before_59_half", "kind_in_service_withdrawal", "kind_hardship",
    "kind_in_plan_roth_conversion", "kind_rollover_to_roth_ira", "paid_to_participant", "source_elective",
    "source_after_tax", "source_roth", "source_safe_harbor", "plan_allows_source_in_service", "plan_has_minimum_age",
    "plan_minimum_age_months", "plan_has_frequency_limit", "plan_times_per_year", "withdrawals_this_year",
    "plan_allows_hardship_from_source", "plan_allows_conversion", "plan_has_roth", "plan_converts_source", "amount",
    "has_balance", "balance", "has_basis", "after_tax_basis", "after_tax_earnings", "taxable_amount",
    "nontaxable_amount", "has_roth_basis",
}) | EXCEPTION_FACTS


def request_facts(request: WithdrawalRequest, plan: Plan, limits: LimitTable) -> dict[str, int]:
    """The withdrawal facts of rules/facts/withdrawal.yaml for one request (exactly BUILT_FACTS)."""
    terms = plan.in_service_withdrawals.for_source(request.source)
    conversion = plan.in_plan_roth_conversion
    has_basis = request.after_tax_basis is not None
    balance = request.source_balance
    if balance is None and has_basis:
        balance = request.after_tax_basis + request.after_tax_earnings
    if balance is None and request.roth_basis is not None:
        balance = request.roth_basis + request.roth_earnings
    age_months = months_of_age(request.birth_date, request.request_date)
    before_59_half = age_months < age_in_months(limits.parameter("early_withdrawal_age"))
    paid = request.kind in PAID_TO_PARTICIPANT
    share, taxable = _taxable(request, paid, before_59_half)
    early = early_distribution(request, taxable, paid, before_59_half, limits)
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
        "has_roth_basis": int(request.roth_basis is not None),
        **exception_facts(request, early),
    }


def _pro_rata(amount: int, basis: int, earnings: int) -> tuple[int, int]:
    """The part of `amount` a source of basis + earnings can pay, and its earnings share, rounded half up."""
    total = basis + earnings
    share = min(amount, total)
    return share, (share * earnings * 2 + total) // (2 * total) if total else 0


def _taxable(request: WithdrawalRequest, paid: bool, before_59_half: bool) -> tuple[int, int]:
    """The amount the taxable part is figured on, and that part (includible in gross income).

    After-tax money: the earnings share pro rata (72(d)(2)). Roth money: nothing, except the earnings
    share of a payment before 59 1/2 that is not for death or disability, which cannot be a qualified
    distribution (402A(d)(2)(A)); it needs roth_basis and roth_earnings (otherwise 0: unknown). Other
    sources (pretax deferrals, employer money, rollovers) are wholly taxable when paid or converted.
    """
    if request.after_tax_basis is not None:
        return _pro_rata(request.amount, request.after_tax_basis, request.after_tax_earnings)
    if request.source is Source.roth:
        if paid and before_59_half and request.exception not in ("death", "disability") \
                and request.roth_basis is not None:
            return _pro_rata(request.amount, request.roth_basis, request.roth_earnings)
        return request.amount, 0
    if request.source is Source.after_tax:
        return request.amount, 0  # basis and earnings not given: the taxable part is unknown
    converts = request.kind in ("in_plan_roth_conversion", "rollover_to_roth_ira")
    return request.amount, request.amount if paid or converts else 0
