"""The 10% additional tax on early distributions (IRC 72(t)) of one request, and the exceptions it shows.

The tax is 10% (early_distribution_additional_tax_percent) of the part of a payment to the
participant includible in gross income, made before 59 1/2. The exceptions modelled, each with
its figures under rules/parameters:

* separation from service in or after the calendar year of turning 55 (72(t)(2)(A)(v); Notice 87-13);
* disability (72(t)(2)(A)(iii)), death (paid to a beneficiary, (A)(ii)), a QDRO alternate payee ((C)):
  the whole payment;
* an emergency personal expense distribution ((I)): from 2024, one a calendar year, up to $1,000;
* a qualified birth or adoption distribution ((H)): from 2020, within the year beginning on the birth
  or adoption, up to $5,000 a child.

A partly covered payment carries the tax on the rest, the taxable part pro rata (each dollar paid
carries the same share of taxable money), rounded half up to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass

from plancheck.ages import add_months
from plancheck.documents.withdrawal import WithdrawalRequest
from plancheck.facts.safe_harbor import parameter_percent
from plancheck.money import apply_rate
from plancheck.rulebook.limits import LimitTable

#: Exceptions that cover the whole payment.
WHOLE = ("disability", "death", "qdro")

#: The exception facts of rules/facts/withdrawal.yaml built here.
EXCEPTION_FACTS = frozenset({
    "exception_separation_55", "exception_disability", "exception_death", "exception_qdro", "exception_emergency",
    "exception_birth_adoption", "exception_claimed_not_met", "statutory_distribution_reason", "separation_year_age", "exempt_amount_72t",
    "additional_tax_72t_before_exceptions", "additional_tax_72t",
})


@dataclass(frozen=True)
class EarlyDistribution:
    """What 72(t) makes of a request: the covered part of the payment and the tax before and after exceptions."""

    exempt: int
    tax_before: int
    tax: int
    separation_55: bool
    claimed_met: bool


def _separation_55(request: WithdrawalRequest, limits: LimitTable) -> bool:
    """Separated from service in or after the calendar year the participant turns 55 (Notice 87-13, Q&A-20)."""
    if request.separation_date is None:
        return False
    age_that_year = request.separation_date.year - request.birth_date.year
    return age_that_year >= int(limits.parameter("early_distribution_separation_age"))


def _claimed_cover(request: WithdrawalRequest, limits: LimitTable) -> int | None:
    """The part of the payment the claimed exception covers; None when the request's facts do not meet it."""
    year = request.request_date.year
    if request.exception in WHOLE:
        return request.amount
    if request.exception == "emergency_personal_expense":
        if year < int(limits.parameter("emergency_personal_expense_distribution_first_year")) \
                or request.exception_amount_used > 0:
            return None  # one a calendar year (72(t)(2)(I)(ii))
        return min(request.amount, limits.cents("emergency_personal_expense_distribution_limit"))
    if request.exception == "birth_or_adoption":
        event = request.birth_or_adoption_date
        months = int(limits.parameter("qualified_birth_adoption_distribution_period"))
        if (year < int(limits.parameter("qualified_birth_adoption_distribution_first_year"))
                or not event <= request.request_date < add_months(event, months)):
            return None
        room = limits.cents("qualified_birth_adoption_distribution_limit") - request.exception_amount_used
        return min(request.amount, room) if room > 0 else None
    return 0


def early_distribution(request: WithdrawalRequest, taxable: int, paid: bool, before_59_half: bool,
                       limits: LimitTable) -> EarlyDistribution:
    """The 72(t) figures of one request whose taxable part is `taxable` cents."""
    rate = parameter_percent(limits, "early_distribution_additional_tax_percent")
    base = taxable if paid and before_59_half else 0
    separation_55 = _separation_55(request, limits)
    claimed = _claimed_cover(request, limits)
    exempt = request.amount if separation_55 else max(claimed or 0, 0)
    taxable_exempt = base if exempt >= request.amount else (base * exempt * 2 + request.amount) // (2 * request.amount)
    return EarlyDistribution(exempt=exempt, tax_before=apply_rate(base, rate),
                             tax=apply_rate(base - taxable_exempt, rate), separation_55=separation_55,
                             claimed_met=claimed is not None)


def exception_facts(request: WithdrawalRequest, result: EarlyDistribution) -> dict[str, int]:
    """The exception facts (EXCEPTION_FACTS) of a request."""
    claimed = request.exception
    met = result.claimed_met and claimed is not None

    def applies(name: str) -> int:
        return int(met and claimed == name)

    separation_age = (request.separation_date.year - request.birth_date.year) if request.separation_date else 0
    return {
        "exception_separation_55": int(result.separation_55),
        "exception_disability": applies("disability"),
        "exception_death": applies("death"),
        "exception_qdro": applies("qdro"),
        "exception_emergency": applies("emergency_personal_expense"),
        "exception_birth_adoption": applies("birth_or_adoption"),
        "exception_claimed_not_met": int(claimed is not None and not result.claimed_met),
        "statutory_distribution_reason": int(claimed in WHOLE),
        "separation_year_age": separation_age,
        "exempt_amount_72t": result.exempt if result.tax_before else 0,
        "additional_tax_72t_before_exceptions": result.tax_before,
        "additional_tax_72t": result.tax,
    }
