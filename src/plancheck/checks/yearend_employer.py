"""Corrections of the year-end checks done across the employer: Roth catch-up (414(v)(7)) and 415(c).

checks/yearend.py lists corrections per plan and employee from arrays aligned with the census rows;
this module gives it the arrays of these kinds, their deadlines, and what each event says besides the
amount (which part of a 415(c) correction was matched, the person's figures at the employer, how a
pretax catch-up becomes Roth).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from plancheck.facts.annual_additions import KINDS as ADDITIONS_KINDS
from plancheck.facts.yearend import PlanFacts, YearendFacts, months_after_year_end
from plancheck.money import format_cents

#: How a pretax catch-up that had to be Roth is corrected (Treas. Reg. 1.414(v)-2(c)(2), T.D. 10033).
TO_ROTH_METHOD = ("transfer to the Roth account with earnings and report as Roth on the Form W-2 while it is not "
                  "yet furnished; after that, an in-plan Roth rollover reported on Form 1099-R")


def wanted(facts: YearendFacts, deadlines: dict[str, dt.date]) -> dict[str, tuple]:
    """kind -> (amounts per census row, deadline, final deadline) for the kinds computed across the employer."""
    out: dict[str, tuple] = {}
    roth = facts.roth_catch_up
    if roth is not None:
        w2 = months_after_year_end(facts.figures.year, roth.w2_months)
        # Until corrected, a pretax catch-up is not catch-up: the deadlines of the limits it is above apply.
        out["roth_catch_up_to_roth"] = (roth.to_roth, w2, deadlines["excess_deferral"])
        out["adp_recharacterized_to_roth"] = (roth.adp_to_roth, deadlines["excise"], deadlines["final"])
    additions = facts.annual_additions
    if additions is not None:
        for kind in ADDITIONS_KINDS:
            out[kind] = (additions.taken[kind], None, None)
    return out


def summary(plan_facts: PlanFacts) -> dict[str, Any]:
    """The `yearend_summary` keys of the checks across the employer, from the plan's facts."""
    f = plan_facts.facts
    return {
        "roth_catch_up": {"in_force": bool(f["roth_catch_up_in_force"]),
                          "pretax": format_cents(f["roth_catch_up_pretax"]),
                          "from_adp_recharacterization": format_cents(f["roth_catch_up_adp_pretax"]),
                          "employees": f["roth_catch_up_employees"],
                          "not_allowed_without_roth": format_cents(f["roth_catch_up_not_allowed"]),
                          "wages_unknown_pretax": format_cents(f["roth_catch_up_wages_unknown_pretax"])},
        "annual_additions": {"employees_over_415c": f["annual_additions_excess_employees"],
                             "excess": format_cents(f["annual_additions_excess"]),
                             "corrected_in_plan": format_cents(f["annual_additions_corrected"])},
    }


def details(facts: YearendFacts, kind: str, row: int) -> dict[str, Any]:
    """What a correction event of these kinds says besides its amount."""
    roth, additions = facts.roth_catch_up, facts.annual_additions
    if kind in ("roth_catch_up_to_roth", "adp_recharacterized_to_roth") and roth is not None:
        return {"prior_year_fica_wages": format_cents(int(roth.wages[row])),
                "wage_threshold": format_cents(roth.threshold), "recharacterize_as": "roth",
                "method": TO_ROTH_METHOD if kind == "roth_catch_up_to_roth"
                else "in-plan Roth rollover reported on Form 1099-R, or distribute it as excess contributions",
                "or_distribute": True}
    if kind in ADDITIONS_KINDS and additions is not None:
        out = {"annual_additions": format_cents(int(additions.additions[row])),
               "limit_415c": format_cents(int(additions.limit[row])),
               "catch_up_excluded": format_cents(int(additions.catch_up[row])),
               "excess": format_cents(int(additions.excess[row])), "order": ADDITIONS_KINDS.index(kind) + 1}
        if kind in ("annual_additions_after_tax", "annual_additions_deferrals"):
            source = "after_tax" if kind == "annual_additions_after_tax" else "deferrals"
            unmatched = int(additions.unmatched[source][row])
            out |= {"unmatched": format_cents(unmatched),
                    "matched": format_cents(int(additions.taken[kind][row]) - unmatched),
                    "action": "return with earnings"}
        else:
            out["action"] = "forfeit" if kind == "annual_additions_match_forfeited" else \
                "take out to an unallocated account (reduces employer contributions)"
        return out
    return {}

