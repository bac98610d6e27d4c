"""Dates of the year-end work as day numbers (days since 1970-01-01): months added with the day
clamped, plan entry dates, and deadlines a number of months after the close of a year."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np

EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Dates plus whole months, the day of month clamped to the month's length (Jan 31 + 1 = Feb 28)."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day_of_month = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.asarray(months, dtype=np.int64)
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    return (target.astype("datetime64[D]") + np.minimum(day_of_month, length - 1)).astype(np.int64)


def months_after_year_end(year: int, months: Decimal) -> dt.date:
    """The last day of a period of months (halves allowed) after the close of a calendar year.

    2 1/2 months after December 31 is March 15; 6 months June 30; 12 months December 31.
    """
    whole = int(months)
    half = months - whole
    if half not in (0, Decimal("0.5")):
        raise ValueError(f"a deadline of {months} months: only whole or half months are supported")
    start = day_number(dt.date(year + 1, 1, 1))
    end = int(add_months(np.array([start]), whole)[0]) + (15 if half else 0) - 1
    return EPOCH + dt.timedelta(days=end)


def entry_dates(eligible_from: np.ndarray, step_months: np.ndarray) -> np.ndarray:
    """The first entry date on or after each date: itself (step 0), or the first day of the next
    month, quarter or half year (step 1, 3, 6) coinciding with or next following it."""
    d = eligible_from.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    index = month.astype(np.int64)  # months since 1970-01 (a January: quarters and halves align)
    on_first = (d == month.astype("datetime64[D]"))
    candidate = index + (~on_first).astype(np.int64)
    step = np.maximum(step_months, 1)
    aligned = -(-candidate // step) * step
    first_day = aligned.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return np.where(step_months == 0, eligible_from, first_day)
