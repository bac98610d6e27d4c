"""The findings of a recorded run as an Excel workbook: a summary sheet, every finding on one sheet, the findings
the run resolved on another, then one sheet per rule.

XlsxWriter in `constant_memory` mode writes each row as it comes, so a run of any size streams
through: the findings are read from the history in rule order and each sheet is written top to
bottom (a finding goes to its rule's sheet and to the all-findings sheet as it is read). Money is
written as numbers with a currency format, so sponsors can add them up; dates as dates, so they sort
and filter as dates; every findings sheet has its header frozen and an autofilter on it.

Every text from the data (employee ids, plan ids, messages, file names) is written with
`write_string`: an employee id `=HYPERLINK("http://...")` is that text in its cell, never a
formula, a link or a number, in a workbook that is forwarded to plan sponsors. The workbook is
also opened with XlsxWriter's conversions of strings to formulas, URLs and numbers turned off.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

COLUMNS = [("status", 11), ("first seen (run)", 9), ("acknowledged", 8), ("severity", 9), ("plan", 24),
           ("employee", 14), ("year", 6), ("date", 11), ("amount", 13), ("limit", 13), ("excess", 13),
           ("citation", 40), ("message", 80), ("fingerprint", 20)]


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(Decimal(str(value)))


def _cells(sheet, row: int, col: int, values: list[Any], cell_format=None) -> None:
    """One row: texts as strings (never formulas, links or numbers), whole numbers as numbers, None blank."""
    for c, value in enumerate(values, start=col):
        if value is None or value == "":
            sheet.write_blank(row, c, None, cell_format)
        elif isinstance(value, bool) or not isinstance(value, int):
            sheet.write_string(row, c, str(value), cell_format)
        else:
            sheet.write_number(row, c, value, cell_format)


#: The sheets before the per-rule ones; a rule's sheet never takes one of their names.
FIXED_SHEETS = ("Summary", "All findings", "Resolved")


def _date(text: Any) -> dt.datetime | None:
    """A finding's date (YYYY-MM-DD) as a date Excel sorts and filters by; None where it is not one."""
    try:
        return dt.datetime.strptime(str(text), "%Y-%m-%d") if text else None
    except ValueError:
        return None


def _sheet_name(rule: str, taken: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "-", rule)[:31]
    name, n = base, 2
    while name.lower() in taken or name.lower() in {s.lower() for s in FIXED_SHEETS}:
        suffix = f"~{n}"
        name, n = base[:31 - len(suffix)] + suffix, n + 1
    taken.add(name.lower())
    return name


def write_xlsx(store, run_id: int, path) -> None:
    """Write the workbook of run `run_id` to `path` (a file name or a binary stream)."""
    import xlsxwriter

    from plancheck.sinks.report_data import run_report

    report = run_report(store, run_id)
    book = xlsxwriter.Workbook(path, {"constant_memory": True, "in_memory": False, "strings_to_formulas": False,
                                      "strings_to_urls": False, "strings_to_numbers": False})
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": "#,##0.00"})
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})
    summary = book.add_worksheet("Summary")
    run = report.run
    summary.set_column(0, 0, 22)
    summary.set_column(1, 1, 70)
    rows: list[tuple[str, Any]] = [
        ("run", run["id"]), ("command", run["command"]), ("scope", run["scope_label"]),
        ("started (UTC)", str(run["started_at"])), ("ended (UTC)", str(run["ended_at"])),
        ("exit status", run["exit_status"]), ("ruleset revision", run["ruleset_revision"]),
        *((name, report.counts[name]) for name in ("findings", "new", "recurring", "resolved", "acknowledged")),
        *((f"input {i['file']}", f"sha256 {i['sha256']}") for i in run["inputs"]),
    ]
    for r, (key, value) in enumerate(rows):
        _cells(summary, r, 0, [key], bold)
        _cells(summary, r, 1, [value])
    r = len(rows) + 1
    _cells(summary, r, 0, ["rule", "findings", "new", "recurring"], bold)
    totals: dict[str, dict[str, int]] = {}
    for item in report.by_rule:
        totals.setdefault(item["rule"], {"new": 0, "recurring": 0})[item["status"]] += item["count"]
    for r, (rule, t) in enumerate(sorted(totals.items()), start=r + 1):
        _cells(summary, r, 0, [rule, t["new"] + t["recurring"], t["new"], t["recurring"]])

    def findings_sheet(name: str, columns: list[tuple[str, int]]):
        sheet = book.add_worksheet(name)
        for c, (title, width) in enumerate(columns):
            sheet.set_column(c, c, width, wrap if title in ("citation", "message") else None)
        _cells(sheet, 0, 0, [c for c, _ in columns], bold)
        sheet.freeze_panes(1, 0)
        return sheet

    def finding_row(sheet, row: int, record: dict[str, Any], first: list[Any], with_rule: bool = False) -> None:
        event = record["event"]
        values = [*first, record["severity"], *([record["rule"]] if with_rule else []),
                  record["plan_id"] or event.get("file") or "", record["employee_id"] or "", record["year"]]
        _cells(sheet, row, 0, values)
        col = len(values)
        when = event.get("pay_date") or event.get("request_date") or ""
        day = _date(when)
        if day is not None:
            sheet.write_datetime(row, col, day, date)
        else:
            _cells(sheet, row, col, [when])
        for offset, key in enumerate(("amount", "limit", "excess"), start=col + 1):
            number = _number(event.get(key))
            if number is not None:
                sheet.write_number(row, offset, number, money)
        _cells(sheet, row, col + 4, [event.get("citation") or "", event.get("message") or "", record["fingerprint"]])

    all_columns = [*COLUMNS[:4], ("rule", 28), *COLUMNS[4:]]
    resolved_columns = [("last seen (run)", 9), *all_columns[3:]]
    every = findings_sheet("All findings", all_columns)
    gone = findings_sheet("Resolved", resolved_columns)
    sheet, taken, row, total = None, set(), 0, 0
    current = None
    for record in store.findings(run_id, by_rule=True):
        if record["rule"] != current:
            if sheet is not None:
                sheet.autofilter(0, 0, row, len(COLUMNS) - 1)
            current = record["rule"]
            sheet = findings_sheet(_sheet_name(current, taken), COLUMNS)
            row = 0
        row += 1
        total += 1
        first = [record["status"], record["first_seen"], "yes" if record["acknowledged"] else ""]
        finding_row(sheet, row, record, first)
        finding_row(every, total, record, first, with_rule=True)
    if sheet is not None:
        sheet.autofilter(0, 0, row, len(COLUMNS) - 1)
    every.autofilter(0, 0, total, len(all_columns) - 1)
    resolved = 0
    for record in store.resolved(run_id):
        resolved += 1
        finding_row(gone, resolved, record, [record["previous_run"]], with_rule=True)
    gone.autofilter(0, 0, resolved, len(resolved_columns) - 1)
    book.close()
