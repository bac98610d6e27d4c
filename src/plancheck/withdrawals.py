"""Withdrawal and conversion requests: input model, facts, and checks on the shared engine.

Requests come as YAML or JSON (a list, or a mapping with `requests:`) or CSV (one per row).
A request that cannot be read is rejected with its line (or list position) and reason and the
others are still checked, as in a batch.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from .ages import age_in_months, age_text, months_of_age
from .engine import Engine
from .batch.records import MAX_RECORD_BYTES, read_blocks
from .errors import InputError, Problem, shorten, shown
from .findings import Finding, build_finding
from .limits import LimitTable
from .models import Strict
from .money import Cents, apply_rate, display_cents, format_cents
from .plan import Plan, Source, safe_harbor_sources
from .rulebook import Rulebook
from .safe_harbor import parameter_percent
from .yamlio import line_of, read_document, validation_problems

Kind = Literal["in_service_withdrawal", "hardship", "in_plan_roth_conversion", "rollover_to_roth_ira"]
#: Kinds of request paid to the participant, who keeps the money: distributions under 72(t).
#: A rollover to a Roth IRA and an in-plan Roth conversion are not (408A(d)(3)(A)(ii); 402A(c)(4)(B)).
PAID_TO_PARTICIPANT = frozenset({"in_service_withdrawal", "hardship"})

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

__all__ = ["BUILT_FACTS", "WithdrawalRequest", "RejectedRequest", "WithdrawalOutcome", "read_requests",
           "request_facts", "check_requests", "months_of_age"]


class WithdrawalRequest(Strict):
    """One request to take money out of a plan source or convert it to Roth."""

    request_id: str = Field(min_length=1)
    plan_id: str = Field(min_length=1)
    employee_id: str = Field(min_length=1)
    birth_date: dt.date
    employed: bool
    request_date: dt.date
    kind: Kind
    source: Source
    amount: Cents = Field(gt=0)
    source_balance: Cents | None = Field(default=None, description="Balance of the source (not needed for after-tax "
                                         "when basis and earnings are given)")
    after_tax_basis: Cents | None = None
    after_tax_earnings: Cents | None = None
    withdrawals_this_year: int = Field(default=0, ge=0, description="Withdrawals already made from this source this "
                                       "plan year")

    @model_validator(mode="after")
    def _consistent(self) -> "WithdrawalRequest":
        if self.birth_date >= self.request_date:
            raise ValueError("birth_date must be before request_date")
        basis_given = (self.after_tax_basis is not None, self.after_tax_earnings is not None)
        if any(basis_given) and self.source is not Source.after_tax:
            raise ValueError("after_tax_basis and after_tax_earnings apply to the after_tax source only")
        if any(basis_given) and not all(basis_given):
            raise ValueError("give both after_tax_basis and after_tax_earnings")
        return self


@dataclass(frozen=True)
class RejectedRequest:
    where: str
    line: int | None
    reason: str


def _csv_header(path: Path, handle) -> tuple[list[str], int]:
    """The header row's names and where the data starts; an unreadable header is an InputError."""
    source = str(path)
    first = handle.readline(MAX_RECORD_BYTES + 1)
    try:
        header = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")], strict=True), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(Problem(source, "header", f"unreadable CSV header: {shorten(str(exc))}", 1)) from None
    if len(first) > MAX_RECORD_BYTES or first.count(b'"') % 2:
        raise InputError(Problem(source, "header", "unreadable CSV header (unbalanced quote or too long)", 1))
    return header, len(first)


def _csv_fields(raw: bytes) -> list[str] | str:
    """A record's fields, or why it cannot be read."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); a request file must be UTF-8"
    try:
        return next(csv.reader([text.removesuffix("\r")], strict=True), [])
    except csv.Error as exc:
        return f"malformed CSV record: {exc}"


def _csv_records(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[RejectedRequest]]:
    """Requests of a CSV file with their lines, and the records that cannot be read as rejects.

    Records are split as in a batch feed (batch/records.py): a quoted field may hold newlines,
    an unbalanced quote rejects its line and reading resumes on the next, so a stray quote never
    swallows the next request. A record with more or fewer fields than the header is rejected.
    """
    source = str(path)
    records: list[tuple[int, dict[str, Any]]] = []
    rejected: list[RejectedRequest] = []

    def reject(line: int, reason: str) -> None:
        rejected.append(RejectedRequest(f"{source}:{line}", line, reason))

    try:
        with path.open("rb") as handle:
            header, start = _csv_header(path, handle)
            for block in read_blocks(handle, start, path.stat().st_size, 2):
                for bad in block.bad:
                    reject(bad.line, bad.reason)
                for begin, end, line in zip(block.starts.tolist(), block.stops.tolist(), block.lines.tolist()):
                    fields = _csv_fields(block.data[begin:end])
                    if isinstance(fields, str):
                        reject(line, fields)
                    elif len(fields) != len(header):
                        reject(line, f"expected {len(header)} fields (the header's), got {len(fields)}")
                    else:
                        records.append((line, {k: v for k, v in zip(header, fields) if v != ""}))
    except OSError as exc:
        raise InputError(Problem(source, "", f"unreadable CSV: {exc.strerror or exc}")) from None
    return records, rejected


def read_requests(path: Path) -> tuple[list[tuple[int | None, WithdrawalRequest]], list[RejectedRequest]]:
    """Every request that validates, with its line; the others as rejects with reasons."""
    source = str(path)
    accepted, rejected = [], []
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise InputError(Problem(source, "", "file not found"))
        records, rejected = _csv_records(path)
    else:
        data = read_document(path)
        items = data.get("requests") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise InputError(Problem(source, "requests", "expected a list of requests (or a mapping with requests:)"))
        records = [(getattr(item, "line", None), item) for item in items]
    for index, (line, record) in enumerate(records):
        where = f"{source}:{line}" if line else f"{source}[{index}]"
        if not isinstance(record, dict):
            rejected.append(RejectedRequest(where, line, "a request must be a mapping of fields"))
            continue
        try:
            accepted.append((line, WithdrawalRequest.model_validate(record)))
        except ValidationError as exc:
            problems = validation_problems(exc, record, source).problems
            reason = "; ".join(f"{p.field}: {p.expected}" + (f" (got {shorten(p.got)})" if p.got else "")
                               for p in problems)
            rejected.append(RejectedRequest(where, line_of(record, ()) or line, reason))
    return accepted, rejected


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


@dataclass
class WithdrawalOutcome:
    findings: list[Finding]
    rejected: list[RejectedRequest]
    checked: int


def check_requests(path: Path, plans: dict[str, Plan], rulebook: Rulebook, engine: Engine,
                   limits: LimitTable) -> WithdrawalOutcome:
    """Check every readable request; requests naming an unknown plan are rejected."""
    accepted, rejected = read_requests(path)
    checkable, facts = [], []
    for line, request in accepted:
        plan = plans.get(request.plan_id)
        if plan is None:
            rejected.append(RejectedRequest(f"{path}:{line}" if line else str(path), line,
                                            f"plan_id: unknown plan {shown(request.plan_id)}"))
            continue
        checkable.append((line, request, plan))
        facts.append(request_facts(request, plan, limits))
    firings = engine["withdrawal"].fire(facts) if facts else []
    types = rulebook.fact_types("withdrawal")
    early_age = age_in_months(limits.parameter("early_withdrawal_age"))
    findings = []
    for index, rule_id in firings:
        line, request, plan = checkable[index]
        this = facts[index]
        restricted = this["source_elective"] or this["source_safe_harbor"]
        needs = max(early_age if restricted else 0, this["plan_minimum_age_months"])
        context = {"plan_id": plan.plan_id, "employee_id": request.employee_id, "request_id": request.request_id,
                   "request_kind": request.kind, "source": request.source.value,
                   "request_date": request.request_date.isoformat(), "line": line,
                   "age": age_text(this["age_months"]), "minimum_age": age_text(needs),
                   "amount_requested": display_cents(request.amount)}
        rule = rulebook.by_id[rule_id]
        # A rule that names the 72(t) figure in its message also carries it as a field of the event.
        extra = {"additional_tax_72t": format_cents(this["additional_tax_72t"])} \
            if "additional_tax_72t" in rule.placeholders else None
        findings.append(build_finding(rule, this, types, context, extra))
    rejected.sort(key=lambda r: (r.line or 0, r.where))
    return WithdrawalOutcome(findings=findings, rejected=rejected, checked=len(checkable))
