"""Ages counted as the law counts them: in calendar months from the birth date.

A person reaches an age of N months on the day N calendar months after the birth date; where
that day does not exist in the month (a birth on the 31st, six months on in a 30-day month, or
the 29th-31st in February), on the last day of that month. So someone born on 31 August 1966
is 59 1/2 on 28 February 2026, and someone born on 29 February 1964 was 59 on 28 February 2023
and 60 on 29 February 2024 (a leap year).

Every comparison of an age in months (the 59 1/2 of IRC 72(t) and 401(k)(2)(B)(i)(III), a plan's
own minimum age) goes through `months_of_age`, so the end-of-month rule lives in one place.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from decimal import Decimal


def add_months(day: dt.date, months: int) -> dt.date:
    """The date `months` calendar months after `day`, on the month's last day where `day.day` does not exist."""
    years, month_index = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month_index + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def date_reaching(birth: dt.date, months: int) -> dt.date:
    """The day a person born on `birth` reaches an age of `months` months."""
    return add_months(birth, months)


def months_of_age(birth: dt.date, on: dt.date) -> int:
    """Completed months of age on a date: the largest N with date_reaching(birth, N) on or before `on`."""
    months = (on.year - birth.year) * 12 + (on.month - birth.month)
    if months > 0 and date_reaching(birth, months) > on:
        months -= 1
    return max(months, 0)


def age_in_months(years: Decimal) -> int:
    """An age written in years (59.5, or a plan's 55.3) as the months it takes to reach it, rounded up.

    Rounding up keeps the comparison on the safe side: an age of 59.3 years (711.6 months) is
    reached only once 712 months are complete.
    """
    return math.ceil(years * 12)


def age_text(months: int) -> str:
    """Months of age for people: 714 -> '59 years 6 months', 720 -> '60 years'."""
    years, rest = divmod(months, 12)
    return f"{years} years {rest} months" if rest else f"{years} years"
