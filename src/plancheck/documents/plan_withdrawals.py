"""Money sources of a plan, and the terms on which money may leave them in service: withdrawals by
source, hardship, in-plan Roth conversions (part of the plan document, documents/plan.py)."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from pydantic import Field

from plancheck.models import Strict


class Source(str, Enum):
    """Money sources (accounts) inside the plan."""

    pretax = "pretax"
    roth = "roth"
    after_tax = "after_tax"
    employer_match = "employer_match"
    nonelective = "nonelective"
    rollover = "rollover"
    safe_harbor = "safe_harbor"


#: Sources holding elective deferrals: in service only at 59 1/2, hardship or another statutory reason.
ELECTIVE_SOURCES = frozenset({Source.pretax, Source.roth})


class SourceWithdrawal(Strict):
    """In-service withdrawal terms for one money source."""

    allowed: bool = False
    minimum_age: Decimal | None = Field(default=None, ge=0, le=100, decimal_places=1,
                                        description="Age the participant must have reached, e.g. 59.5")
    times_per_year: int | None = Field(default=None, ge=1, description="Withdrawals allowed per plan year")


class Hardship(Strict):
    """Hardship withdrawals (401(k)(2)(B)(i)(IV), Treas. Reg. 1.401(k)-1(d)(3))."""

    allowed: bool = False
    sources: list[Source] = Field(default_factory=lambda: [Source.pretax, Source.roth])


class InServiceWithdrawals(Strict):
    """In-service withdrawals are plan-optional, per money source."""

    pretax: SourceWithdrawal = SourceWithdrawal()
    roth: SourceWithdrawal = SourceWithdrawal()
    after_tax: SourceWithdrawal = SourceWithdrawal()
    employer_match: SourceWithdrawal = SourceWithdrawal()
    nonelective: SourceWithdrawal = SourceWithdrawal()
    rollover: SourceWithdrawal = SourceWithdrawal()
    safe_harbor: SourceWithdrawal = Field(
        default=SourceWithdrawal(),
        description="Safe-harbor match or nonelective money (401(k)(12)(E)(i), (13)(D)(iii)): like elective "
        "deferrals, in service only from 59 1/2 (or hardship, disability, plan termination)")
    hardship: Hardship = Hardship()

    def for_source(self, source: Source) -> SourceWithdrawal:
        return getattr(self, source.value)


class InPlanRothConversion(Strict):
    """In-plan Roth conversions under 402A(c)(4)."""

    allowed: bool = False
    sources: list[Source] = Field(default_factory=list)
