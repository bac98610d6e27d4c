"""The nearest compliant election: the per-period amounts closest to what was asked that break no rule.

Worked on the election's one projection: only its pretax, Roth and after-tax columns change,
and the period facts are rebuilt after each repair. The repairs are declared in the rule files
(`repair:`, rulebook/repairs.py); this module interprets them and knows no rule. Each repair
reads where its rule's condition holds and the excess its report gives (amount - limit), and is
the smallest change that clears it from the first pay period where it breaks:

* stop_source sets a source the rule forbids to zero;
* cut_excess cuts each period's excess where the rule fires (or the first such period's, at most
  a named fact: deferrals above a plan cap beyond what catch-up covers), source by source;
* cut_growth cuts what each period adds to a year-to-date excess (a limit reached mid-year);
* move_growth moves what each period adds to a year-to-date excess from one source to another,
  the total unchanged (pretax catch-up made Roth from the period it is first needed), never into
  a source the plan does not accept;
* cut_year cuts a limit on the year from groups of sources, latest pay period first, by the
  smallest total that clears the year-end excess: a cut that lowers the match frees room too.

A cut is noted under its rule whenever the rule has an excess to cut (even one the election's
money cannot clear); a stop or a move only when it changes money.

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
from plancheck.documents.plan import Plan
from plancheck.engine import Engine
from plancheck.engine.prescreen import evaluate_columns
from plancheck.facts.period import build_period_facts
from plancheck.facts.plan_arrays import PlanArrays
from plancheck.facts.projection import project
from plancheck.findings import has_errors
from plancheck.money import PPM, apply_rate, format_cents, format_ppm
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.repairs import SOURCES, CutExcess, CutGrowth, CutYear, MoveGrowth, StopSource
from plancheck.rulebook.rules import Rule, Rulebook


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

    def cut(self, row: int, amount: int, order) -> int:
        """Take up to `amount` cents from period `row`, source by source in `order`; return what was taken."""
        taken = 0
        for source in order:
            take = min(int(self.amounts[source][row]), amount - taken)
            if take > 0:
                self.amounts[source][row] -= take
                taken += take
        return taken

    def excess(self, rule: Rule) -> np.ndarray:
        """The rule's excess (reported amount less limit) in each period where it fires, else zero."""
        assert rule.report is not None  # the loader requires a report of every repair that cuts or moves
        f = self.facts
        amount = f[rule.report.amount] - (f[rule.report.limit] if rule.report.limit else 0)
        return np.where(evaluate_columns(rule.condition, f), amount, 0)


def _rises(ytd: np.ndarray) -> np.ndarray:
    """How much a year-to-date excess grows at each period (what that period adds to it)."""
    running = np.maximum.accumulate(np.maximum(ytd, 0))
    return np.diff(running, prepend=0)


def _stop_source(s: _Schedule, rule: Rule, repair: StopSource, plan: Plan) -> bool:
    if not s.amounts[repair.source].any() or not evaluate_columns(rule.condition, s.facts).any():
        return False
    s.amounts[repair.source][:] = 0
    s.note(rule.id)
    return True


def _cut_excess(s: _Schedule, rule: Rule, repair: CutExcess, plan: Plan) -> bool:
    excess = s.excess(rule)
    if repair.at_most is not None:
        excess = np.minimum(excess, s.facts[repair.at_most])
    rows = np.flatnonzero(excess > 0)
    if not len(rows):
        return False
    s.note(rule.id)
    if repair.periods == "first":
        rows = rows[:1]
    return sum(s.cut(int(row), int(excess[row]), repair.take_from) for row in rows) > 0


def _cut_growth(s: _Schedule, rule: Rule, repair: CutGrowth, plan: Plan) -> bool:
    rises = _rises(s.excess(rule))
    rows = np.flatnonzero(rises > 0)
    if not len(rows):
        return False
    s.note(rule.id)
    return sum(s.cut(int(row), int(rises[row]), repair.take_from) for row in rows) > 0


def _move_growth(s: _Schedule, rule: Rule, repair: MoveGrowth, plan: Plan) -> bool:
    """Each period's growth of the excess moves to the other source in that period, where the rule counts the
    other source's money of the whole year at every later date (Roth deferrals covering catch-up); the total
    is unchanged."""
    if not getattr(plan.contributions, repair.to):
        return False
    moves = np.minimum(_rises(s.excess(rule)), s.amounts[repair.take_from])
    if not moves.any():
        return False
    s.amounts[repair.take_from] -= moves
    s.amounts[repair.to] += moves
    s.note(rule.id)
    return True


def _cut_latest_first(s: _Schedule, total: int, groups) -> int:
    """Cut `total` cents group by group, each over every pay period latest first; return what was cut."""
    taken = 0
    for order in groups:
        for row in range(len(s.facts["period"]) - 1, -1, -1):
            if taken >= total:
                return taken
            taken += s.cut(row, total - taken, order)
    return taken


def _cut_year(s: _Schedule, rule: Rule, repair: CutYear, plan: Plan) -> bool:
    """A limit on the year: cut the first group of sources, latest pay period first, and only then the next,
    so later groups keep what was asked whenever earlier ones can give way.

    The cut is the smallest total that clears the year-end excess, found by binary search: a cut of
    matched money also lowers the match, which frees room too, so cutting the whole excess
    would take more than needed (a $60 match lost with December's deferrals is $60 less to cut)."""
    excess = int(s.excess(rule)[-1])
    if excess <= 0:
        return False
    s.note(rule.id)
    start = {k: v.copy() for k, v in s.amounts.items()}

    def fits(total: int) -> bool:
        s.amounts = {k: v.copy() for k, v in start.items()}
        _cut_latest_first(s, total, repair.take_from)
        s.refresh()
        return bool(s.excess(rule)[-1] <= 0)

    low, high = 0, excess  # the whole excess always clears what employee money can clear
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    s.amounts = {k: v.copy() for k, v in start.items()}
    return _cut_latest_first(s, low, repair.take_from) > 0


_KINDS = {"stop_source": _stop_source, "cut_excess": _cut_excess, "cut_growth": _cut_growth,
          "move_growth": _move_growth, "cut_year": _cut_year}


def _repairs(rulebook: Rulebook) -> list[Rule]:
    """The period rules checked on elections that have a repair, in their declared order: applied one per round
    until a round changes nothing."""
    return sorted((r for r in rulebook.rules.get("period", []) if r.repair is not None and "election" in r.inputs),
                  key=lambda r: r.repair.order)


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
    repairs = _repairs(rulebook)
    for _round in range(8 * periods + 16):
        changed = False
        for rule in repairs:
            if changed and rule.repair.kind != "stop_source":
                break
            if _KINDS[rule.repair.kind](schedule, rule, rule.repair, plan):
                changed = True
                if rule.repair.kind != "stop_source":
                    break  # a stop only zeroes a source the plan refuses: the next stop needs no facts rebuilt
        if not changed:
            break  # a round with nothing to repair: done
        schedule.refresh()
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
