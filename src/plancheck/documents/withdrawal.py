"""Withdrawal and conversion requests as documents: YAML or JSON (a list, or a mapping with
`requests:`) or CSV (one per row). A request that cannot be read is rejected with its line (or
list position) and reason, and the others are still read, as in a batch."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from plancheck.documents.feed.records import MAX_RECORD_BYTES, read_blocks
from plancheck.documents.plan import Source
from plancheck.documents.yamlio import line_of, read_document, validation_problems
from plancheck.errors import InputError, Problem, shorten
from plancheck.models import Strict
from plancheck.money import Cents

Kind = Literal["in_service_withdrawal", "hardship", "in_plan_roth_conversion", "rollover_to_roth_ira"]


#: The 72(t)(2) exceptions a request may claim besides separation from service (given by separation_date).
Exception72t = Literal["disability", "death", "qdro", "emergency_personal_expense", "birth_or_adoption"]

#: Kinds of request paid to the participant, who keeps the money: distributions under 72(t).
#: A rollover to a Roth IRA and an in-plan Roth conversion are not (408A(d)(3)(A)(ii); 402A(c)(4)(B)).
PAID_TO_PARTICIPANT = frozenset({"in_service_withdrawal", "hardship"})


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
    roth_basis: Cents | None = Field(default=None, description="Roth source: the designated Roth contributions in it "
                                     "(its basis, not taxed again)")
    roth_earnings: Cents | None = Field(default=None, description="Roth source: the earnings on them (taxable in a "
                                        "distribution that is not qualified, 402A(d))")
    separation_date: dt.date | None = Field(
        default=None, description="With employed: false, the day the participant left the employer's service: a "
        "separation in or after the calendar year of turning 55 ends the 72(t) additional tax (72(t)(2)(A)(v))")
    exception: Exception72t | None = Field(
        default=None, description="The 72(t)(2) exception the payment is made under: disability (72(t)(2)(A)(iii)), "
        "death (paid to a beneficiary, (A)(ii)), qdro (paid to an alternate payee, (C)), emergency_personal_expense "
        "((I)), birth_or_adoption ((H))")
    birth_or_adoption_date: dt.date | None = Field(
        default=None, description="With exception: birth_or_adoption, the day the child was born or the adoption "
        "was finalized (the payment must fall within the year that begins on it)")
    exception_amount_used: Cents = Field(
        default=0, ge=0, description="With exception: emergency_personal_expense, what was already paid as one this "
        "calendar year (one a year); with birth_or_adoption, what was already paid for the same child")

    @model_validator(mode="after")
    def _consistent(self) -> "WithdrawalRequest":
        if self.birth_date >= self.request_date:
            raise ValueError("birth_date must be before request_date")
        self._check_exception_fields()
        basis_given = (self.after_tax_basis is not None, self.after_tax_earnings is not None)
        if any(basis_given) and self.source is not Source.after_tax:
            raise ValueError("after_tax_basis and after_tax_earnings apply to the after_tax source only")
        if any(basis_given) and not all(basis_given):
            raise ValueError("give both after_tax_basis and after_tax_earnings")
        roth_given = (self.roth_basis is not None, self.roth_earnings is not None)
        if any(roth_given) and self.source is not Source.roth:
            raise ValueError("roth_basis and roth_earnings apply to the roth source only")
        if any(roth_given) and not all(roth_given):
            raise ValueError("give both roth_basis and roth_earnings")
        return self

    def _check_exception_fields(self) -> None:
        """The 72(t) fields go together: a separation needs employed: false; each date its exception."""
        if self.separation_date is not None:
            if self.employed:
                raise ValueError("separation_date goes with employed: false")
            if not self.birth_date < self.separation_date <= self.request_date:
                raise ValueError("separation_date must be after birth_date and on or before request_date")
        if (self.birth_or_adoption_date is not None) != (self.exception == "birth_or_adoption"):
            raise ValueError("exception: birth_or_adoption needs birth_or_adoption_date, and that date goes with it only")
        if self.exception_amount_used and self.exception not in ("emergency_personal_expense", "birth_or_adoption"):
            raise ValueError("exception_amount_used goes with exception: emergency_personal_expense or birth_or_adoption")


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

    Records are split as in a batch feed (documents/feed/records.py): a quoted field may hold newlines,
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
    rejected: list[RejectedRequest] = []
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
    more_accepted, more_rejected = validate_requests(records, source)
    return more_accepted, rejected + more_rejected


def validate_requests(records: list[tuple[int | None, Any]], source: str
                      ) -> tuple[list[tuple[int | None, WithdrawalRequest]], list[RejectedRequest]]:
    """Requests that validate, with their line; the others as rejects naming each field and what was expected.

    `records` are (line or None, parsed record) pairs, from a file or from a posted JSON list.
    """
    accepted: list[tuple[int | None, WithdrawalRequest]] = []
    rejected: list[RejectedRequest] = []
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
