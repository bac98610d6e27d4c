"""Checking one feed partition: the pure function each worker runs.

Pre-screen, then engine: every period fact is computed vectorized, each rule's condition is
evaluated over all rows with numpy (conditions.evaluate_columns, compiled from the same YAML),
and only each employee-year's first candidate row per rule is sent to durable-rules, which
decides. If the engine declines a candidate (the pre-screen may be a superset), the next
candidate of that employee-year and rule is tried, until the engine confirms or none is left.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from plancheck.documents.feed.parse import Parsed, parse_partition
from plancheck.documents.feed.reader import LINE
from plancheck.documents.feed.records import Reject
from plancheck.documents.plan import Plan
from plancheck.engine import Engine
from plancheck.engine.firings import fire_on_rows
from plancheck.engine.prescreen import evaluate_columns
from plancheck.facts.feed_rows import Entries, add_employer_totals, period_rows
from plancheck.facts.period import build_period_facts
from plancheck.facts.plan_arrays import PlanArrays
from plancheck.findings import finding_events
from plancheck.money import format_cents_column
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rule, Rulebook
from plancheck.safe_open import write_new

NEVER = np.iinfo(np.int64).max
#: Year-to-date figures carried on each batch finding: (event key, fact).
YTD_FIELDS = (("compensation", "ytd_compensation"), ("deferrals", "ytd_deferrals"),
              ("deferrals_employer", "ytd_deferrals_employer"), ("deferrals_all_plans", "ytd_deferrals_all_plans"),
              ("catch_up", "ytd_catch_up"),
              ("after_tax", "ytd_after_tax"), ("employer_match", "ytd_employer_match"),
              ("match_expected", "ytd_match_expected"), ("employer_nonelective", "ytd_employer_nonelective"),
              ("annual_additions", "ytd_annual_additions"))


@dataclass
class Checker:
    """Everything a worker needs, built once per process."""

    rulebook: Rulebook
    limits: LimitTable
    plans: list[Plan]
    engine: Engine = field(init=False)
    arrays: PlanArrays = field(init=False)
    plan_index: dict[str, int] = field(init=False)
    rules: list[Rule] = field(init=False)
    needed: dict[str, list[str]] = field(init=False)
    employer_of: np.ndarray = field(init=False)   # employer code of each plan index
    shared_employers: bool = field(init=False)     # some employer has more than one plan

    def __post_init__(self) -> None:
        self.engine = Engine(self.rulebook)
        self.arrays = PlanArrays.from_plans(self.plans)
        self.plan_index = {p.plan_id: i for i, p in enumerate(self.plans)}
        employers = sorted({p.employer_id for p in self.plans})
        self.employer_of = np.array([employers.index(p.employer_id) for p in self.plans], dtype=np.int64)
        self.shared_employers = len(employers) < len(self.plans)
        self.rules = [rule for rule in self.rulebook.rules["period"] if "feed" in rule.inputs]
        types = self.rulebook.fact_types("period")
        self.needed = {r.id: [n for n in types if n in r.placeholders
                              or (r.report and n in (r.report.amount, r.report.limit))] for r in self.rules}


@dataclass
class PartitionResult:
    """What one partition produced: counts, and sorted findings and rejects as files."""

    rows_read: int
    rows_checked: int
    rows_rejected: int
    employees: int
    plans: list[str]
    findings_by_rule: dict[str, int]
    findings_path: str
    rejects_path: str
    peak_memory_mb: int = 0
    #: Seconds spent in each phase of the partition's check (PHASES), for the batch's profile.
    phases: dict[str, float] = field(default_factory=dict)
    #: The years of the pay dates of the rows checked.
    years: list[int] = field(default_factory=list)
    #: The (plan, year) pairs of the rows checked: what the run history compares plan by plan, year by year.
    plan_years: list[tuple[str, int]] = field(default_factory=list)
    #: Rows rejected because rules/limits has no figures for their year, per year.
    years_without_limits: dict[int, int] = field(default_factory=dict)


#: The phases of checking one partition, in order (the batch summary's `phases.partition`).
PHASES = ("load", "parse", "conflicts", "facts", "prescreen", "engine", "findings", "write")


class PhaseClock:
    """Seconds per phase: `clock.lap("parse")` charges the time since the last lap (or `since`) to that phase."""

    def __init__(self, phases: tuple[str, ...] = PHASES, since: float | None = None) -> None:
        self.seconds = dict.fromkeys(phases, 0.0)
        self._last = time.perf_counter() if since is None else since

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now


def _run_starts(continues: np.ndarray) -> np.ndarray:
    """For each position, where its run began (continues[i] says i belongs to the run of i - 1)."""
    return np.maximum.accumulate(np.where(~continues, np.arange(len(continues)), 0))


def _by_person_and_day(parsed: Parsed) -> np.ndarray:
    """Rows in (plan, employee, pay date, line) order: one stable sort of a packed key where it fits in int64."""
    n = len(parsed.line)
    by_line = np.arange(n) if n < 2 or bool(np.all(np.diff(parsed.line) > 0)) else np.argsort(parsed.line, kind="stable")
    if not n:
        return by_line
    first_day = int(parsed.pay_day.min())
    days = int(parsed.pay_day.max()) - first_day + 1
    people = (int(parsed.plan_index.max()) + 1) * (len(parsed.employee_ids) + 1)
    if people * days >= 1 << 62:  # cannot happen with real dates; keep the general sort for safety
        return np.lexsort((parsed.line, parsed.pay_day, parsed.employee, parsed.plan_index))
    key = (parsed.plan_index * (len(parsed.employee_ids) + 1) + parsed.employee) * days + (parsed.pay_day - first_day)
    return by_line[np.argsort(key[by_line], kind="stable")]


def _drop_conflicts(parsed: Parsed, rejects: list[Reject]) -> tuple[np.ndarray, np.ndarray]:
    """Refuse duplicate pay dates and conflicting birth dates of one employee in one plan.

    Returns which rows are kept, and the kept rows in (plan, employee, pay date) order.
    A birth date is compared with the employee's row of the earliest line; a pay date's
    first line is kept and its later lines refused.
    """
    n = len(parsed.line)
    keep = np.ones(n, dtype=bool)
    order = _by_person_and_day(parsed)
    if not n:
        return keep, order
    plan, employee = parsed.plan_index[order], parsed.employee[order]
    same_person = np.zeros(n, dtype=bool)
    same_person[1:] = (np.diff(plan) == 0) & (np.diff(employee) == 0)
    starts = np.flatnonzero(~same_person)
    # Each person's row of the earliest line: lines are distinct, so (line, row) packs into one int64.
    earliest = np.minimum.reduceat(parsed.line[order] * n + order, starts) % n
    first_row = np.repeat(earliest, np.diff(np.append(starts, n)))
    for pos in np.flatnonzero(parsed.birth_day[order] != parsed.birth_day[first_row]).tolist():
        row, first = int(order[pos]), int(first_row[pos])
        keep[row] = False
        rejects.append(Reject(int(parsed.line[row]),
                              f"birth_date: differs from line {int(parsed.line[first])} for the same plan_id and "
                              f"employee_id", parsed.raw(int(parsed.source_row[row]))))
    order = order[keep[order]]
    dup = np.zeros(len(order), dtype=bool)
    dup[1:] = ((np.diff(parsed.plan_index[order]) == 0) & (np.diff(parsed.employee[order]) == 0)
               & (np.diff(parsed.pay_day[order]) == 0))
    first_of_date = _run_starts(dup)
    for pos in np.flatnonzero(dup).tolist():
        row, first = int(order[pos]), int(order[first_of_date[pos]])
        keep[row] = False
        rejects.append(Reject(int(parsed.line[row]),
                              f"duplicate of line {int(parsed.line[first])}: same plan_id, employee_id and pay_date",
                              parsed.raw(int(parsed.source_row[row]))))
    return keep, order[~dup]


def _first_in_group(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of each group's first true row, NEVER where none."""
    if not len(mask):
        return np.zeros(0, dtype=np.int64)
    return np.minimum.reduceat(np.where(mask, np.arange(len(mask)), NEVER), starts)


def confirmed_firings(checker: Checker, facts: dict[str, np.ndarray], starts: np.ndarray,
                      clock: PhaseClock | None = None) -> list[tuple[int, int, str]]:
    """(group, row, rule id) of the first row per employee-year on which the engine fires each rule."""
    clock = clock or PhaseClock()
    masks = {r.id: evaluate_columns(r.condition, facts) for r in checker.rules}
    candidates = {rule_id: _first_in_group(mask, starts) for rule_id, mask in masks.items()}
    clock.lap("prescreen")
    found: list[tuple[int, int, str]] = []
    engine = checker.engine["period"]
    while candidates:
        fired: dict[str, set[int]] = {}
        # Each row is asked only about the rules it is a candidate for, carrying only the facts they read: on a
        # night where most employees break something, whole 38-fact records cost the engine most of its time.
        for rule_ids, rows in _rows_by_candidate_rules(candidates).items():
            for row, rule_id in fire_on_rows(engine, facts, rows, rule_ids):
                fired.setdefault(rule_id, set()).add(row)
        clock.lap("engine")
        if not fired and not any((c != NEVER).any() for c in candidates.values()):
            break
        retry = {}
        for rule_id, first in candidates.items():
            groups = np.flatnonzero(first != NEVER)
            hits = np.array([int(first[g]) in fired.get(rule_id, ()) for g in groups], dtype=bool)
            found.extend((int(g), int(first[g]), rule_id) for g in groups[hits])
            declined = groups[~hits]
            if len(declined):  # the pre-screen was wider than the engine: try each group's next candidate
                mask = masks[rule_id]
                mask[first[declined]] = False
                retry[rule_id] = np.where(np.isin(np.arange(len(first)), declined), _first_in_group(mask, starts), NEVER)
        candidates = retry
    return found


def _rows_by_candidate_rules(candidates: dict[str, np.ndarray]) -> dict[tuple[str, ...], np.ndarray]:
    """The candidate rows grouped by the set of rules each is a candidate for (few distinct sets)."""
    rule_ids = list(candidates)
    rows = [c[c != NEVER] for c in candidates.values()]
    if not rule_ids or not sum(len(r) for r in rows):
        return {}
    every = np.concatenate(rows)
    if len(rule_ids) > 62:  # a bit per rule in an int64: past that, every candidate row is asked about every rule
        return {tuple(rule_ids): np.unique(every)}
    bits = np.concatenate([np.full(len(r), 1 << i, dtype=np.int64) for i, r in enumerate(rows)])
    order = np.argsort(every, kind="stable")
    every, bits = every[order], bits[order]
    starts = np.flatnonzero(np.r_[True, every[1:] != every[:-1]])
    masks = np.bitwise_or.reduceat(bits, starts)
    unique_rows = every[starts]
    groups: dict[tuple[str, ...], np.ndarray] = {}
    for mask in np.unique(masks).tolist():
        groups[tuple(rule_id for i, rule_id in enumerate(rule_ids) if mask >> i & 1)] = unique_rows[masks == mask]
    return groups


def _one_per_scope(checker: Checker, parsed: Parsed, entries: Entries,
                   firings: list[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """(row, rule id) of each finding: a rule of employer scope once per employee-year of an employer.

    Such a rule compares figures of every plan of the employer, so it breaks in each plan the
    employee is in; it is reported where it broke first (earliest pay date, then plan_id).
    """
    kept: list[tuple[int, str]] = []
    first: dict[tuple[int, int, int, str], tuple[int, str, int]] = {}
    for _group, row, rule_id in firings:
        if checker.rulebook.by_id[rule_id].scope != "employer" or not checker.shared_employers:
            kept.append((row, rule_id))
            continue
        source = int(entries.row[row])
        plan = int(parsed.plan_index[source])
        key = (int(checker.employer_of[plan]), int(parsed.employee[source]), int(entries.year[row]), rule_id)
        place = (int(parsed.pay_day[source]), checker.plans[plan].plan_id, row)
        if key not in first or place < first[key]:
            first[key] = place
    kept.extend((row, key[3]) for key, (_day, _plan, row) in first.items())
    return kept


def _finding_events(checker: Checker, parsed: Parsed, entries: Entries, facts: dict[str, np.ndarray],
                    firings: list[tuple[int, str]]) -> list[tuple[list[Any], dict[str, Any]]]:
    """Each firing as (sort key, finding event). The figures of every firing row are gathered per fact in one
    numpy step, and each rule's findings are built together (findings.finding_events), texts a column at a time."""
    if not firings:
        return []
    types = checker.rulebook.fact_types("period")
    rank = {r.id: i for i, r in enumerate(checker.rules)}
    by_id = {r.id: r for r in checker.rules}
    at = np.array([row for row, _rule in firings], dtype=np.int64)
    source = entries.row[at]
    years, periods = facts["year"][at].tolist(), facts["period"][at].tolist()
    plan_ids = [checker.plans[i].plan_id for i in parsed.plan_index[source].tolist()]
    employee_ids = [parsed.employee_ids[i] for i in parsed.employee[source].tolist()]
    pay_dates = parsed.pay_day[source].astype("datetime64[D]").astype(str).tolist()
    lines = parsed.line[source].tolist()
    ytd = [(key, format_cents_column(facts[fact][at])) for key, fact in YTD_FIELDS]
    of_rule: dict[str, list[int]] = {}
    for i, (_row, rule_id) in enumerate(firings):
        of_rule.setdefault(rule_id, []).append(i)
    events: list[tuple[list[Any], dict[str, Any]]] = []
    for rule_id, indices in of_rule.items():
        picked = np.array(indices, dtype=np.int64)
        contexts = [{"plan_id": plan_ids[i], "employee_id": employee_ids[i], "year": years[i], "period": periods[i],
                     "pay_date": pay_dates[i], "line": lines[i]} for i in indices]
        extras = [{"ytd": {key: texts[i] for key, texts in ytd}} for i in indices]
        columns = {name: facts[name][at[picked]] for name in checker.needed[rule_id]}
        built = finding_events(by_id[rule_id], columns, types, contexts, extras)
        events.extend(([plan_ids[i], employee_ids[i], years[i], pay_dates[i], rank[rule_id]], event)
                      for i, event in zip(indices, built, strict=True))
    return events


def _renumbered(table: pa.Table, shift: int) -> pa.Table:
    if not shift:
        return table
    where = table.schema.get_field_index(LINE)
    return table.set_column(where, LINE, pc.add(table.column(where), pa.scalar(shift, pa.int64())))


def check_partition(checker: Checker, pieces: list[Path], out_dir: Path, name: str,
                    shifts: list[int] | None = None) -> PartitionResult:
    """Check one partition (its spill pieces, each one's line numbers shifted by `shifts` to be the file's, where
    its range was numbered provisionally: reader.renumber); write its sorted findings and rejects to out_dir."""
    clock = PhaseClock()
    table = pa.concat_tables([_renumbered(ipc.open_file(piece).read_all(), shift)
                              for piece, shift in zip(pieces, shifts or [0] * len(pieces), strict=True)])
    clock.lap("load")
    parsed, rejects = parse_partition(table, checker.plan_index, checker.limits)
    clock.lap("parse")
    keep, accepted = _drop_conflicts(parsed, rejects)
    clock.lap("conflicts")
    events: list[tuple[list[Any], dict[str, Any]]] = []
    counter: Counter[str] = Counter()
    if len(accepted):
        entries = Entries.of(parsed, accepted)
        rows = period_rows(parsed, entries)
        if checker.shared_employers:
            add_employer_totals(checker.employer_of, parsed, entries, rows)
        facts = build_period_facts(rows, checker.arrays, checker.limits)
        clock.lap("facts")
        firings = _one_per_scope(checker, parsed, entries, confirmed_firings(checker, facts, rows.group_start, clock))
        events = _finding_events(checker, parsed, entries, facts, firings)
        counter.update(rule_id for _row, rule_id in firings)
    events.sort(key=lambda item: item[0])
    rejects.sort(key=lambda r: r.line)
    clock.lap("findings")
    findings_path = out_dir / f"{name}.findings.jsonl"
    rejects_path = out_dir / f"{name}.rejects.jsonl"
    # Each line: the sort key, a tab (never inside orjson's JSON, which escapes it), the finding as it is written.
    write_new(findings_path, b"".join(orjson.dumps(key) + b"\t" + orjson.dumps(event) + b"\n" for key, event in events))
    write_new(rejects_path, b"".join(orjson.dumps(r.as_json()) + b"\n" for r in rejects))
    clock.lap("write")
    checked = int(keep.sum())
    people = len(accepted) and 1 + int(np.count_nonzero((np.diff(parsed.plan_index[accepted]) != 0)
                                                        | (np.diff(parsed.employee[accepted]) != 0)))
    return PartitionResult(
        rows_read=table.num_rows, rows_checked=checked, rows_rejected=len(rejects), employees=people,
        plans=sorted({checker.plans[int(i)].plan_id for i in np.unique(parsed.plan_index[accepted])}),
        findings_by_rule=dict(counter), findings_path=str(findings_path), rejects_path=str(rejects_path),
        peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, phases=clock.seconds,
        years=[int(y) for y in np.unique(parsed.year[accepted])],
        plan_years=_plan_years(checker, parsed.plan_index[accepted], parsed.year[accepted]),
        years_without_limits=parsed.years_without_limits,
    )


def _plan_years(checker: Checker, plan_index: np.ndarray, year: np.ndarray) -> list[tuple[str, int]]:
    """The distinct (plan id, year) pairs of the rows."""
    keys = np.unique((plan_index.astype(np.int64) << 16) | year.astype(np.int64))
    return [(checker.plans[int(k >> 16)].plan_id, int(k & 0xFFFF)) for k in keys]
