"""The nearest compliant election: the per-period amounts closest to what was asked that break no rule.

Worked on the election's one projection: only its pretax, Roth and after-tax columns change,
and the period facts are rebuilt after each repair. The repairs, each the smallest change that
clears its rule at the first pay period where it breaks:

* a source the plan does not accept is set to zero (pretax-, roth-, after-tax-not-permitted);
* employee contributions above the period's pay are cut, after-tax first (contributions-exceed-pay);
* after-tax above the plan's % of pay cap is cut to it (after-tax-rate-above-plan-max);
* deferrals above the plan's % cap, beyond what catch-up covers, are cut (deferral-rate-above-plan-max);
* pretax catch-up of a participant under the Roth catch-up rule is made Roth from the pay period it is
  first needed, the total deferred unchanged (roth-catch-up-required, 414(v)(7));
* deferrals above the plan-level 402(g) limit (catch-up included where available) are cut from the
  period the limit is reached (402g-deferral-limit, catch-up-not-permitted);
* annual additions above 415(c) are cut from after-tax first, then from deferrals, latest pay period
  first (415c-annual-additions: a limit on the year), by the smallest total that clears the year-end
  excess: a cut that lowers the match frees its 415(c) room too, and is counted.

Cuts are made from where the limit is reached, so every earlier period keeps what was asked, and
the total cut is the excess: no smaller change clears the rule. The result is re-checked with
`check_election` and offered only when it has no error finding. Pure: no I/O, no HTTP.

A source elected as a percentage of pay is offered as a percentage: each changed pay period gets
the largest percentage in the plan's steps (`contributions.percent_increment`) whose amount is at
most the repaired one, so no limit the repair met is broken again; periods as asked keep the
elected percentage. Roth money not elected (catch-up made Roth) takes the pretax election's
unit. That schedule is re-checked too; should rounding to the steps ever leave an error, the
offer is made in dollars and says why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from plancheck.checks.election import check_election
from plancheck.documents.election import ElectionFile
from plancheck.documents.limits import LimitTable
from plancheck.documents.plan import Plan
from plancheck.engine import Engine
from plancheck.facts.period import build_period_facts
from plancheck.facts.plan_arrays import PlanArrays
from plancheck.facts.projection import project
from plancheck.findings import has_errors
from plancheck.money import PPM, apply_rate, format_cents, format_ppm
from plancheck.rulebook.rules import Rulebook

SOURCES = ("pretax", "roth", "after_tax")
_NOT_PERMITTED = {"pretax": "pretax-not-permitted", "roth": "roth-not-permitted", "after_tax": "after-tax-not-permitted"}


class _Schedule:
    """Per-period amounts being repaired, with the facts they give and what was done to them."""

    def __init__(self, rows, arrays: PlanArrays, limits: LimitTable):
        self.rows, self.arrays, self.limits = rows, arrays, limits
        self.amounts = {k: rows.amounts[k].astype(np.int64).copy() for k in SOURCES}
        self.asked = {k: v.copy() for k, v in self.amounts.items()}
        self.repairs: list[str] = []
        self.facts: dict[str, np.ndarray] = {}
        self.refresh()

    def refresh(self) -> None:
        rows = replace(self.rows, amounts={**self.rows.amounts, **self.amounts})
        self.facts = build_period_facts(rows, self.arrays, self.limits)

    def note(self, rule: str) -> None:
        if rule not in self.repairs:
            self.repairs.append(rule)

    def cut(self, row: int, amount: int, order: tuple[str, ...]) -> int:
        """Take up to `amount` cents from period `row`, source by source in `order`; return what was taken."""
        taken = 0
        for source in order:
            take = min(int(self.amounts[source][row]), amount - taken)
            if take > 0:
                self.amounts[source][row] -= take
                taken += take
        return taken


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _unpermitted(s: _Schedule, plan: Plan) -> bool:
    changed = False
    for source in SOURCES:
        if not getattr(plan.contributions, source) and s.amounts[source].any():
            s.amounts[source][:] = 0
            s.note(_NOT_PERMITTED[source])
            changed = True
    return changed


def _above_pay(s: _Schedule, _plan: Plan) -> bool:
    f = s.facts
    excess = f["employee_contributions"] - f["compensation"]
    changed = False
    for row in np.flatnonzero(excess > 0):
        changed |= s.cut(int(row), int(excess[row]), ("after_tax", "roth", "pretax")) > 0
    if changed:
        s.note("contributions-exceed-pay")
    return changed


def _after_tax_cap(s: _Schedule, plan: Plan) -> bool:
    if plan.contributions.max_after_tax_percent is None:
        return False
    capped = np.minimum(s.amounts["after_tax"], s.facts["after_tax_cap"])
    if np.array_equal(capped, s.amounts["after_tax"]):
        return False
    s.amounts["after_tax"] = capped
    s.note("after-tax-rate-above-plan-max")
    return True


def _deferral_cap(s: _Schedule, plan: Plan) -> bool:
    if plan.contributions.max_deferral_percent is None:
        return False
    f = s.facts
    beyond_catch_up = f["ytd_deferrals_above_plan_max"] - f["ytd_catch_up"]
    row = _first((f["deferrals"] > f["deferral_cap"]) & (beyond_catch_up > 0))
    if row is None:
        return False
    over = min(int(f["deferrals"][row] - f["deferral_cap"][row]), int(beyond_catch_up[row]))
    s.note("deferral-rate-above-plan-max")
    return s.cut(row, over, ("pretax", "roth")) > 0


def _rises(ytd: np.ndarray) -> np.ndarray:
    """How much a year-to-date excess grows at each period (what that period adds to it)."""
    running = np.maximum.accumulate(np.maximum(ytd, 0))
    return np.diff(running, prepend=0)


def _roth_catch_up(s: _Schedule, plan: Plan) -> bool:
    """Each period's new pretax catch-up becomes Roth in that period: the Roth deferred then covers the
    catch-up at every later date (414(v)(7) counts Roth deferrals of the whole year), and the total
    deferred is unchanged."""
    f = s.facts
    if not plan.contributions.roth or not (f["roth_catch_up_applies"] == 1).any():
        return False
    rises = _rises(np.where(f["roth_catch_up_applies"] == 1, f["ytd_pretax_catch_up"], 0))
    moves = np.minimum(rises, s.amounts["pretax"])
    if not moves.any():
        return False
    s.amounts["pretax"] -= moves
    s.amounts["roth"] += moves
    s.note("roth-catch-up-required")
    return True


def _deferral_limit(s: _Schedule, _plan: Plan) -> bool:
    """Cut each period's deferrals by what it adds above the plan-level 402(g) limit, pretax first."""
    f = s.facts
    rises = _rises(f["ytd_deferrals_employer"] - f["deferral_limit"])
    rows = np.flatnonzero(rises > 0)
    if not len(rows):
        return False
    first = int(rows[0])
    s.note("catch-up-not-permitted" if f["plan_offers_catch_up"][first] == 0 and f["catch_up_eligible"][first] == 1
           else "402g-deferral-limit")
    return sum(s.cut(int(row), int(rises[row]), ("pretax", "roth")) for row in rows) > 0


def _cut_latest_first(s: _Schedule, total: int) -> int:
    """Cut `total` cents from after-tax, latest pay period first, then from deferrals; return what was cut."""
    taken = 0
    for order in (("after_tax",), ("pretax", "roth")):
        for row in range(len(s.facts["period"]) - 1, -1, -1):
            if taken >= total:
                return taken
            taken += s.cut(row, total - taken, order)
    return taken


def _annual_additions(s: _Schedule, _plan: Plan) -> bool:
    """415(c) is a limit on the year: cut from after-tax, latest pay period first, and only then from
    deferrals, so deferrals keep what was asked whenever after-tax money can give way.

    The cut is the smallest total that clears the year-end excess, found by binary search: a cut of
    matched money also lowers the match, which frees 415(c) room too, so cutting the whole excess
    would take more than needed (a $60 match lost with December's deferrals is $60 less to cut)."""
    f = s.facts
    excess = int(f["ytd_annual_additions"][-1] - f["annual_additions_limit"][-1])
    if excess <= 0:
        return False
    s.note("415c-annual-additions")
    start = {k: v.copy() for k, v in s.amounts.items()}

    def fits(total: int) -> bool:
        s.amounts = {k: v.copy() for k, v in start.items()}
        _cut_latest_first(s, total)
        s.refresh()
        return bool(s.facts["ytd_annual_additions"][-1] <= s.facts["annual_additions_limit"][-1])

    low, high = 0, excess  # the whole excess always clears what employee money can clear
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    s.amounts = {k: v.copy() for k, v in start.items()}
    return _cut_latest_first(s, low) > 0


#: Applied in this order, one repair per round, until a round changes nothing.
_REPAIRS = (_unpermitted, _above_pay, _after_tax_cap, _deferral_cap, _roth_catch_up, _deferral_limit,
            _annual_additions)


def _units(election: ElectionFile) -> dict[str, str]:
    """Each source's unit in the offer: as elected; a source not elected in the pretax election's unit."""
    terms = election.election

    def unit(contribution) -> str | None:
        if contribution is None:
            return None
        return "percent" if contribution.percent is not None else "amount"
    fallback = unit(terms.pretax) or "amount"
    return {k: unit(getattr(terms, k)) or fallback for k in SOURCES}


def _largest_step_within(amount: np.ndarray, pay: np.ndarray, step: int) -> np.ndarray:
    """The largest multiple of `step` (ppm) whose amount on `pay`, rounded half up as elections are, is at most
    `amount` (cents): apply_rate(pay, r) <= A  <=>  pay*r + PPM/2 < (A+1)*PPM  <=>  r <= ((A+1)*PPM - PPM/2 - 1) // pay."""
    safe_pay = np.maximum(pay, 1)
    rate = ((amount + 1) * PPM - PPM // 2 - 1) // safe_pay
    steps = np.minimum(rate // step, 100 * 10_000 // step)
    return np.where((amount > 0) & (pay > 0), steps * step, 0)


def _in_percent(s: _Schedule, election: ElectionFile, units: dict[str, str], step: int) -> dict[str, np.ndarray]:
    """Per-period percentages (ppm) of the sources offered in percent: the elected one where the period is as
    asked, else the largest step whose amount fits in the repaired amount.

    Where a period's deferrals only moved from pretax to Roth (catch-up made Roth, the total as asked),
    Roth takes the rest of the elected total instead of being rounded down too: the total stays as
    asked and the Roth share only grows, which 414(v)(7) welcomes."""
    pay = s.facts["plan_compensation"]
    elected = {k: getattr(election.election, k).percent if getattr(election.election, k) is not None else 0
               for k in SOURCES}
    percents = {}
    for source in SOURCES:
        if units[source] != "percent":
            continue
        changed = s.amounts[source] != s.asked[source]
        percents[source] = np.where(changed, _largest_step_within(s.amounts[source], pay, step), elected[source])
    if units["pretax"] == units["roth"] == "percent":
        moved = ((s.amounts["pretax"] != s.asked["pretax"])
                 & (s.amounts["pretax"] + s.amounts["roth"] == s.asked["pretax"] + s.asked["roth"]))
        total = elected["pretax"] + elected["roth"]
        percents["roth"] = np.where(moved, total - percents["pretax"], percents["roth"])
    return percents


def _percent_text(ppm: int) -> str:
    return format_ppm(int(ppm))[:-1]


def nearest_compliant(election: ElectionFile, plan: Plan, limits: LimitTable, rulebook: Rulebook,
                      engine: Engine) -> dict[str, Any]:
    """The closest per-period schedule to the election that has no error finding, or why there is none.

    Returns `found`, and when found: `units` (each source offered in `percent` of pay or as an
    `amount`), `percent_increment` (the plan's steps, where a source is in percent), `schedule`
    (runs of pay periods with the same terms), `changes` (each source's asked and proposed year
    totals in dollars), `repairs` (the rules the changes clear), `rechecked` and the re-checked
    `summary` and non-error `findings`.
    """
    projection = project(election, plan, limits, "election")
    schedule = _Schedule(projection.rows, PlanArrays.from_plans([plan]), limits)
    asked = schedule.asked
    periods = len(projection.dates)
    for _round in range(8 * periods + 16):
        for repair in _REPAIRS:
            if repair(schedule, plan):
                schedule.refresh()
                break
        else:
            break  # a round with nothing to repair: done
    else:
        return {"found": False, "reason": "the repairs did not settle", "repairs": schedule.repairs}

    def recheck(amounts: dict[str, np.ndarray]):
        return check_election(election, plan, limits, rulebook, engine, "nearest compliant election", amounts=amounts)

    units = _units(election)
    step = plan.contributions.percent_increment
    offer: dict[str, Any] = {}
    if "percent" in units.values():
        percents = _in_percent(schedule, election, units, step)
        pay = schedule.facts["plan_compensation"]
        amounts = {**schedule.amounts, **{k: apply_rate(pay, v) for k, v in percents.items()}}
        result = recheck(amounts)
        if not has_errors(result.findings):
            offer = {"units": units, "percent_increment": _percent_text(step),
                     "schedule": _runs(amounts, asked, projection, units, percents, _asked_percents(election))}
        else:
            left = sorted({f.rule for f in result.findings if f.severity == "error"})
            offer = {"percent_unavailable": f"in steps of {_percent_text(step)}% the schedule would break "
                                            f"{', '.join(left)}; it is offered in dollars per pay period"}
    if "schedule" not in offer:
        amounts = schedule.amounts
        result = recheck(amounts)
        if has_errors(result.findings):
            left = sorted({f.rule for f in result.findings if f.severity == "error"})
            return {"found": False, "repairs": schedule.repairs, "remaining_rules": left,
                    "reason": "no change to this election's pretax, Roth and after-tax amounts clears "
                              + ", ".join(left) + " (amounts paid before the election or in other plans already "
                              "break it, or the rule concerns the employer's money)"}
        offer = {**offer, "units": {k: "amount" for k in SOURCES},
                 "schedule": _runs(amounts, asked, projection, {k: "amount" for k in SOURCES}, {}, {})}
    return {
        "found": True,
        "rechecked": True,
        "repairs": schedule.repairs,
        **offer,
        "changes": {k: {"asked": format_cents(int(asked[k].sum())), "proposed": format_cents(int(amounts[k].sum()))}
                    for k in SOURCES if not np.array_equal(asked[k], amounts[k])},
        "findings": [f.as_event() for f in result.findings],
        "summary": result.summary,
    }


def _asked_percents(election: ElectionFile) -> dict[str, int]:
    terms = election.election
    return {k: getattr(terms, k).percent if getattr(terms, k) is not None and getattr(terms, k).percent is not None
            else 0 for k in SOURCES}


def _runs(amounts: dict[str, np.ndarray], asked: dict[str, np.ndarray], projection, units: dict[str, str],
          percents: dict[str, np.ndarray], asked_percents: dict[str, int]) -> list[dict[str, Any]]:
    """Consecutive pay periods with the same proposed terms, as one entry each: `election` gives each source's
    terms as an election document writes them ({"percent": "6"} or {"amount": "250.00"}); `amounts` the
    dollars per pay period, or null for a percentage whose dollars vary within the run (with pay)."""
    runs: list[dict[str, Any]] = []
    periods = projection.rows.period
    for row, pay_date in enumerate(projection.dates):
        terms = {k: {"percent": _percent_text(percents[k][row])} if units[k] == "percent"
                 else {"amount": format_cents(int(amounts[k][row]))} for k in SOURCES}
        values = {k: format_cents(int(amounts[k][row])) for k in SOURCES}
        differs = any((percents[k][row] != asked_percents[k]) if units[k] == "percent" else
                      (amounts[k][row] != asked[k][row]) for k in SOURCES)
        if runs and runs[-1]["election"] == terms and runs[-1]["changed"] == differs:
            last = runs[-1]
            last.update(to_period=int(periods[row]), to_pay_date=pay_date.isoformat())
            last["amounts"] = {k: v if v == values[k] else None for k, v in last["amounts"].items()}
            continue
        runs.append({"from_period": int(periods[row]), "from_pay_date": pay_date.isoformat(),
                     "to_period": int(periods[row]), "to_pay_date": pay_date.isoformat(),
                     "election": terms, "amounts": values, "changed": differs})
    return runs
