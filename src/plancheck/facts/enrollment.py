"""Plan facts of eligibility (410(a), 401(k)(2)(D)) and automatic enrollment (QACA, 401(k)(13)(C)).

Eligibility terms are compared with the cited maxima under rules/parameters by the plan rules.
A QACA's qualified percentage is checked year by year of automatic enrollment (year 1 is the
initial period): at least 3%, 4%, 5%, then 6% of pay (qaca_minimum_*), at most 10% in year 1 and
15% later (10% in every year of plan years before 2020; qaca_maximum_*). The plan's deemed
deferral never falls from one year to the next, so years 1-4 decide the minimum and year 1 and
the escalation's cap decide the maximum.
"""

from __future__ import annotations

from plancheck.documents.plan import Plan, SafeHarborDesign
from plancheck.facts.safe_harbor import parameter_percent
from plancheck.rulebook.limits import LimitTable

QACA_DESIGNS = (SafeHarborDesign.qaca_match, SafeHarborDesign.qaca_nonelective)

#: The plan facts enrollment_facts builds (part of facts/plan.py BUILT_FACTS).
ENROLLMENT_FACTS = frozenset({
    "eligibility_minimum_age", "eligibility_maximum_age", "eligibility_months_of_service",
    "eligibility_maximum_service", "employer_eligibility_given", "employer_eligibility_months_of_service", "employer_eligibility_full_vesting",
    "eligibility_maximum_service_full_vesting", "qaca_design", "automatic_enrollment",
    "automatic_enrollment_default_percent", "qaca_percent_short", "qaca_percent_short_year",
    "qaca_percent_given", "qaca_percent_required", "qaca_percent_above_maximum", "qaca_percent_above_year",
    "qaca_percent_highest", "qaca_percent_maximum",
})


def _qaca_schedule(plan: Plan, limits: LimitTable, year: int) -> dict[str, int]:
    """Where the deemed deferral falls short of, or goes above, the QACA's qualified percentage."""
    enrollment = plan.automatic_enrollment
    facts = {"qaca_percent_short": 0, "qaca_percent_short_year": 0, "qaca_percent_given": 0,
             "qaca_percent_required": 0, "qaca_percent_above_maximum": 0, "qaca_percent_above_year": 0,
             "qaca_percent_highest": 0, "qaca_percent_maximum": 0}
    if enrollment is None:
        return facts
    initial = parameter_percent(limits, "qaca_minimum_initial_percent")
    step = parameter_percent(limits, "qaca_minimum_annual_increase_percent")
    final = parameter_percent(limits, "qaca_minimum_final_percent")
    years_to_final = 1 + -(-(final - initial) // step)  # the year the minimum reaches its final figure
    for k in range(1, years_to_final + 1):
        required = min(initial + (k - 1) * step, final)
        given = enrollment.percent_in_year(k)
        if given < required:
            facts.update(qaca_percent_short=1, qaca_percent_short_year=k, qaca_percent_given=given,
                         qaca_percent_required=required)
            break
    initial_max = parameter_percent(limits, "qaca_maximum_initial_percent")
    later_max = parameter_percent(limits, "qaca_maximum_percent") \
        if year >= int(limits.parameter("qaca_maximum_percent_first_year")) else initial_max
    highest = enrollment.cap if enrollment.cap is not None else enrollment.default_percent
    if enrollment.default_percent > initial_max:
        facts.update(qaca_percent_above_maximum=1, qaca_percent_above_year=1,
                     qaca_percent_highest=enrollment.default_percent, qaca_percent_maximum=initial_max)
    elif highest > later_max:
        # A cap above the default comes with an increase: the first year past the maximum.
        above = (later_max - enrollment.default_percent) // enrollment.annual_increase + 2
        facts.update(qaca_percent_above_maximum=1, qaca_percent_above_year=above, qaca_percent_highest=highest,
                     qaca_percent_maximum=later_max)
    return facts


def enrollment_facts(plan: Plan, limits: LimitTable, year: int) -> dict[str, int]:
    """The eligibility and automatic-enrollment plan facts (exactly ENROLLMENT_FACTS)."""
    eligibility = plan.eligibility
    employer = eligibility.employer_contributions
    enrollment = plan.automatic_enrollment
    return {
        "eligibility_minimum_age": eligibility.minimum_age,
        "eligibility_maximum_age": int(limits.parameter("eligibility_maximum_age")),
        "eligibility_months_of_service": eligibility.months_of_service,
        "eligibility_maximum_service": int(limits.parameter("eligibility_maximum_service")),
        "employer_eligibility_given": int(employer is not None),
        "employer_eligibility_months_of_service": employer.months_of_service if employer
        else eligibility.months_of_service,
        "employer_eligibility_full_vesting": int(bool(employer and employer.full_immediate_vesting)),
        "eligibility_maximum_service_full_vesting": int(limits.parameter("eligibility_maximum_service_full_vesting")),
        "qaca_design": int(plan.safe_harbor_design in QACA_DESIGNS),
        "automatic_enrollment": int(enrollment is not None),
        "automatic_enrollment_default_percent": enrollment.default_percent if enrollment else 0,
        **_qaca_schedule(plan, limits, year),
    }
