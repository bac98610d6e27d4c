"""Plan documents as numpy arrays indexed by plan, for vectorized fact building."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plancheck.documents.plan import Plan

NONE = -1  # "no cap" in an int64 array


@dataclass(frozen=True)
class PlanArrays:
    """Per-plan parameters; row p describes plans[p]."""

    plans: tuple[Plan, ...]
    allows_pretax: np.ndarray
    allows_roth: np.ndarray
    allows_after_tax: np.ndarray
    catch_up_offered: np.ndarray
    catch_up_60_63: np.ndarray
    max_deferral_ppm: np.ndarray
    max_after_tax_ppm: np.ndarray
    has_match: np.ndarray
    match_rate_ppm: np.ndarray  # (plans, tiers)
    match_upto_ppm: np.ndarray  # (plans, tiers); unused tiers repeat the last bound
    match_pretax: np.ndarray
    match_roth: np.ndarray
    match_after_tax: np.ndarray
    match_catch_up: np.ndarray
    match_annual_basis: np.ndarray
    match_true_up: np.ndarray
    match_cap: np.ndarray
    nonelective_ppm: np.ndarray

    @classmethod
    def from_plans(cls, plans: list[Plan]) -> "PlanArrays":
        tiers = max([len(p.match.tiers) for p in plans if p.match] or [1])
        rate = np.zeros((len(plans), tiers), dtype=np.int64)
        upto = np.zeros((len(plans), tiers), dtype=np.int64)
        for i, plan in enumerate(plans):
            if plan.match:
                for t, tier in enumerate(plan.match.tiers):
                    rate[i, t] = tier.rate
                    upto[i, t] = tier.up_to_percent
                upto[i, len(plan.match.tiers):] = plan.match.tiers[-1].up_to_percent

        def col(fn) -> np.ndarray:
            return np.array([int(fn(p)) for p in plans], dtype=np.int64)

        def optional(value) -> int:
            return NONE if value is None else int(value)

        return cls(
            plans=tuple(plans),
            allows_pretax=col(lambda p: p.contributions.pretax),
            allows_roth=col(lambda p: p.contributions.roth),
            allows_after_tax=col(lambda p: p.contributions.after_tax),
            catch_up_offered=col(lambda p: p.catch_up.offered),
            catch_up_60_63=col(lambda p: p.catch_up.offered and p.catch_up.age_60_63),
            max_deferral_ppm=col(lambda p: optional(p.contributions.max_deferral_percent)),
            max_after_tax_ppm=col(lambda p: optional(p.contributions.max_after_tax_percent)),
            has_match=col(lambda p: p.match is not None),
            match_rate_ppm=rate,
            match_upto_ppm=upto,
            match_pretax=col(lambda p: bool(p.match) and "pretax" in p.match.sources),
            match_roth=col(lambda p: bool(p.match) and "roth" in p.match.sources),
            match_after_tax=col(lambda p: bool(p.match) and "after_tax" in p.match.sources),
            match_catch_up=col(lambda p: bool(p.match) and p.match.match_catch_up),
            match_annual_basis=col(lambda p: bool(p.match) and p.match.basis == "annual"),
            match_true_up=col(lambda p: bool(p.match) and p.match.true_up),
            match_cap=col(lambda p: optional(p.match.annual_cap if p.match else None)),
            nonelective_ppm=col(lambda p: p.nonelective.percent if p.nonelective else 0),
        )
