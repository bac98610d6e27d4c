"""Pay dates of a year from a plan's payroll frequency."""

from __future__ import annotations

import calendar
import datetime as dt

from plancheck.documents.plan import Frequency, Payroll


def pay_dates(payroll: Payroll, year: int) -> list[dt.date]:
    """Every pay date in a calendar year, in order."""
    if payroll.frequency in (Frequency.weekly, Frequency.biweekly):
        step = dt.timedelta(days=7 if payroll.frequency is Frequency.weekly else 14)
        anchor = payroll.anchor_pay_date
        assert anchor is not None  # guaranteed by Payroll's validator
        first_of_year = dt.date(year, 1, 1)
        offset = (first_of_year - anchor).days % step.days
        day = first_of_year + dt.timedelta(days=(step.days - offset) % step.days)
        dates = []
        while day.year == year:
            dates.append(day)
            day += step
        return dates
    month_ends = [dt.date(year, m, calendar.monthrange(year, m)[1]) for m in range(1, 13)]
    if payroll.frequency is Frequency.monthly:
        return month_ends
    dates = []
    for month_end in month_ends:
        dates.extend([month_end.replace(day=15), month_end])
    return dates
