"""Exact money and percentage handling: integer cents and integer parts-per-million.

Money is carried as integer cents everywhere; percentages as integer millionths of one
(3% is 30_000 ppm). Applying a rate rounds half up to the cent in integer arithmetic, so the
same helper works on Python ints and on numpy int64 arrays without ever touching floats.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

PPM = 1_000_000
#: The largest amount any money field may hold: $99,999,999.99.
#:
#: Amounts are int64 cents and the period facts add up to 366 pay dates of a year and then
#: apply rates in parts-per-million (cents x ppm). With every field at most 9,999,999,999 cents,
#: a year's sum is at most 3.66e12 cents and 3.66e12 x 1e6 = 3.66e18 stays below int64's 9.2e18,
#: so no figure can wrap. Elections, batch feeds and withdrawal requests all refuse more.
MAX_CENTS = 9_999_999_999
MAX_DOLLARS_TEXT = "$99,999,999.99"
_MONEY_RE = re.compile(r"^-?\d+(\.\d{1,2})?$")
_PERCENT_RE = re.compile(r"^\d+(\.\d{1,4})?$")


def _plain_text(value: Any) -> str:
    """Text of a number as written: ints as is, floats through their shortest repr."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got true/false")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # YAML/JSON give 1500.5 as a float; its shortest repr is the text the user wrote.
        text = repr(value)
        if "e" in text or "inf" in text or "nan" in text:
            raise ValueError(f"expected a plain decimal number, got {text}")
        return text
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return value.strip().replace(",", "").removeprefix("$")
    raise ValueError(f"expected a number, got {type(value).__name__}")


def parse_cents(value: Any, *, allow_negative: bool = False) -> int:
    """Dollars (int, '1234.56', 1234.5) to integer cents; more than two decimals is an error."""
    text = _plain_text(value)
    if not _MONEY_RE.match(text):
        raise ValueError("expected dollars with at most two decimals, like 1234.56")
    if len(text.lstrip("-").lstrip("0").split(".")[0]) > len(str(MAX_CENTS)):
        raise ValueError(f"expected at most {MAX_DOLLARS_TEXT}")  # before Decimal() reads a megabyte of digits
    cents = int((Decimal(text) * 100).to_integral_value())
    if cents < 0 and not allow_negative:
        raise ValueError("expected an amount of zero or more")
    if abs(cents) > MAX_CENTS:
        raise ValueError(f"expected at most {MAX_DOLLARS_TEXT}")
    return cents


def parse_ppm(value: Any) -> int:
    """A percentage (3, '4.5', 4.5) to integer millionths of one; 0 to 100, four decimals."""
    text = _plain_text(value)
    if not _PERCENT_RE.match(text):
        raise ValueError("expected a percentage from 0 to 100 with at most four decimals, like 4.5")
    try:
        ppm = int(Decimal(text) * 10_000)
    except InvalidOperation:  # pragma: no cover - regex already checked the shape
        raise ValueError("expected a percentage") from None
    if ppm > 100 * 10_000:
        raise ValueError("expected a percentage from 0 to 100")
    return ppm


def apply_rate(cents, ppm):
    """cents x rate, rounded half up to the cent; works on ints and int64 arrays (non-negative)."""
    return (cents * ppm + PPM // 2) // PPM


def format_cents(cents: int) -> str:
    """Integer cents as an exact dollar string: 123456 -> '1234.56'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{frac:02d}"


def _cents_column(cents, pattern: str) -> list[str]:
    """Every value of an int64 array as `pattern` of its whole dollars and cents, at once: integer division in
    numpy, one str.format each, a minus sign before the negative ones."""
    import numpy as np

    cents = np.asarray(cents, dtype=np.int64)
    whole, frac = np.divmod(np.abs(cents), 100)
    texts = list(map(pattern.format, whole.tolist(), frac.tolist()))
    for i in np.flatnonzero(cents < 0).tolist():
        texts[i] = "-" + texts[i]
    return texts


def format_cents_column(cents) -> list[str]:
    """format_cents of every value of an int64 array (a batch writes ten year-to-date amounts on every finding)."""
    return _cents_column(cents, "{}.{:02d}")


def display_cents_column(cents) -> list[str]:
    """display_cents of every value of an int64 array."""
    return _cents_column(cents, "${:,}.{:02d}")


def display_cents(cents: int) -> str:
    """Integer cents for people: 123456 -> '$1,234.56'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    return f"{sign}${whole:,}.{frac:02d}"


def display_dollars(text: str) -> str:
    """An event's exact dollar text for people: '32500.00' -> '$32,500.00' (digits moved, never a float)."""
    return display_cents(parse_cents(text, allow_negative=True))


def format_hundredths(value: int) -> str:
    """Hundredths of a percent as a percentage: 625 -> '6.25%' (ADP, ACP and top-heavy ratios)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(int(value)), 100)
    return f"{sign}{whole}.{frac:02d}%"


def format_ppm(ppm: int) -> str:
    """Millionths of one as a percentage string: 45000 -> '4.5%'."""
    text = format(Decimal(ppm) / 10_000, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


_MONEY_SCHEMA = {
    "description": "US dollars with at most two decimals, at most 99,999,999.99 (a number or a string such as "
                   "'1234.56')",
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_CENTS / 100, "multipleOf": 0.01},
        {"type": "string", "pattern": r"^\$?[0-9][0-9,]*(\.[0-9]{1,2})?$"},
    ],
}
_PERCENT_SCHEMA = {
    "description": "Percentage from 0 to 100 with at most four decimals",
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 100},
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,4})?$"},
    ],
}

#: Dollars in a document, integer cents in the model.
Cents = Annotated[int, BeforeValidator(parse_cents), WithJsonSchema(_MONEY_SCHEMA)]
#: A percentage in a document, integer millionths of one in the model.
Ppm = Annotated[int, BeforeValidator(parse_ppm), WithJsonSchema(_PERCENT_SCHEMA)]
