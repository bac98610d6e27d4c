"""The IRS figures of docs/design/domain.md, typed in once for every test that needs an independent answer.

Tests compare plancheck (which reads rules/limits) with these, so a wrong figure in either shows.
Dollars; None where the limit was not in force that year.
"""

from __future__ import annotations

from typing import NamedTuple


class Year(NamedTuple):
    deferral_402g: int
    catch_up: int
    catch_up_60_63: int | None
    annual_additions_415c: int
    compensation_401a17: int
    hce_414q: int
    roth_catch_up_wages: int | None


FIGURES = {
    2023: Year(22500, 7500, None, 66000, 330000, 150000, None),    # IRS Notice 2022-55
    2024: Year(23000, 7500, None, 69000, 345000, 155000, None),    # IRS Notice 2023-75
    2025: Year(23500, 7500, 11250, 70000, 350000, 160000, None),   # IRS Notice 2024-80
    2026: Year(24500, 8000, 11250, 72000, 360000, 160000, 150000),  # IRS Notice 2025-67
}
#: 414(q)(1)(B) compensation by look-back year, 2022 included (the 2023 test looks back to it).
HCE_414Q = {2022: 135000, **{year: figures.hce_414q for year, figures in FIGURES.items()}}
