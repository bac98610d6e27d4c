"""Exact integer arithmetic of the nondiscrimination tests: ratios, averages, limits and leveling.

Ratios are integers in hundredths of a percent (6.25% is 625), rounded half up as the
regulations round them ("to the nearest one-hundredth of one percent", Treas. Reg.
1.401(k)-2(a)(2), (3); 1.401(m)-2(a)(2), (3)). Money is integer cents. Nothing here uses floats.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import numpy as np

#: Hundredths of a percent in one (100% = 10,000).
WHOLE = 10_000


def ratios(amounts: np.ndarray, pay: np.ndarray) -> np.ndarray:
    """amount / pay in hundredths of a percent, rounded half up; 0 where pay is 0."""
    safe = np.where(pay > 0, pay, 1)
    return np.where(pay > 0, (2 * amounts * WHOLE + safe) // (2 * safe), 0)


def average(values: np.ndarray) -> int:
    """The mean of integer ratios, rounded half up to the hundredth of a percent (0 for no one)."""
    n = len(values)
    if n == 0:
        return 0
    return int((2 * int(values.sum()) + n) // (2 * n))


def test_limits(nhce: int, basic: Decimal, alternative: Decimal, spread: Decimal) -> tuple[int, int, int]:
    """(limit, basic limit, alternative limit) for an NHCE average, all in hundredths of a percent.

    The HCE average passes if it is not more than nhce x 1.25, or not more than both nhce + 2
    points and nhce x 2 (Treas. Reg. 1.401(k)-2(a)(1)(i)). The HCE average is itself a whole
    number of hundredths, so flooring a fractional limit decides exactly the same cases.
    """
    basic_limit = int((Decimal(nhce) * basic).to_integral_value(ROUND_FLOOR))
    alternative_limit = int(min(Decimal(nhce) * alternative, Decimal(nhce) + spread * 100).to_integral_value(ROUND_FLOOR))
    return max(basic_limit, alternative_limit), basic_limit, alternative_limit


def _round_div(numerator: np.ndarray | int, denominator: int) -> np.ndarray:
    return (2 * np.asarray(numerator, dtype=np.int64) + denominator) // (2 * denominator)


def excess_by_ratio(amounts: np.ndarray, pay: np.ndarray, rates: np.ndarray, limit: int) -> np.ndarray:
    """Step one of the correction: each HCE's reduction when the highest ratios are lowered to pass.

    The highest ratio is lowered to the next highest, then both, and so on, until the group's
    average equals the limit (Treas. Reg. 1.401(k)-2(b)(2)(ii), 1.401(m)-2(b)(2)(ii)); the
    level is exact (a fraction of a hundredth), and each reduction is the HCE's amount above
    that level of their pay, in cents. The sum is the plan's total excess.
    """
    n = len(rates)
    if n == 0 or average(rates) <= limit:
        return np.zeros(n, dtype=np.int64)
    order = np.argsort(-rates, kind="stable")
    ordered = rates[order].astype(np.int64)
    allowed = n * limit
    # Lowering the top k to level L leaves sum(rest) + k * L = allowed.
    suffix = np.concatenate([np.cumsum(ordered[::-1])[::-1][1:], [0]])
    k = np.arange(1, n + 1)
    next_rate = np.concatenate([ordered[1:], [0]])
    # The level for k is (allowed - suffix[k]) / k; take the first k whose level is at least the next ratio.
    ok = (allowed - suffix) >= k * next_rate
    top = int(np.argmax(ok)) + 1
    level_numerator = allowed - int(suffix[top - 1])  # level = level_numerator / top (hundredths)
    chosen = order[:top]
    target = _round_div(pay[chosen] * level_numerator, top * WHOLE)
    reductions = np.zeros(n, dtype=np.int64)
    reductions[chosen] = np.maximum(amounts[chosen] - target, 0)
    return reductions


def allocate_by_amount(amounts: np.ndarray, total: int) -> np.ndarray:
    """Step two: the total excess taken from the HCEs with the highest dollar amounts, leveled down.

    The largest amount is lowered to the next largest, then both, until the total is used
    (401(k)(8)(C), Treas. Reg. 1.401(k)-2(b)(2)(iii); 401(m)(6)(C), 1.401(m)-2(b)(2)(iii)). Those
    leveled end at the same amount to the cent; where the total does not divide evenly, the
    leftover cents come from the first of them in census order.
    """
    n = len(amounts)
    allocated = np.zeros(n, dtype=np.int64)
    if n == 0 or total <= 0:
        return allocated
    total = min(total, int(amounts.sum()))
    order = np.argsort(-amounts, kind="stable")
    ordered = amounts[order].astype(np.int64)
    prefix = np.cumsum(ordered)
    k = np.arange(1, n + 1)
    next_amount = np.concatenate([ordered[1:], [0]])
    # Level for the top k: (prefix[k] - total) / k; first k whose level reaches the next amount.
    ok = (prefix - total) >= k * next_amount
    top = int(np.argmax(ok)) + 1
    remaining = int(prefix[top - 1]) - total
    level, extra = divmod(remaining, top)
    chosen = np.sort(order[:top])
    allocated[chosen] = amounts[chosen] - level
    allocated[chosen[:extra]] -= 1  # `extra` of them end one cent higher, so the total is exact
    return allocated


def highest_level(lower: np.ndarray, upper: np.ndarray, limit: int) -> int:
    """The largest ratio cap L with average(clip(L, lower, upper)) <= limit (for the mid-year preview).

    `lower` is what each HCE has already reached, `upper` the most each could reach. Returns
    WHOLE (no cap needed) when even the upper bounds pass, and the lowest cap tried when
    nothing passes.
    """
    if len(lower) == 0 or average(upper) <= limit:
        return WHOLE
    low, high = 0, WHOLE
    if average(np.clip(0, lower, upper)) > limit:
        return 0
    while low < high:  # invariant: `low` passes; every cap above `high` fails
        middle = (low + high + 1) // 2
        if average(np.clip(middle, lower, upper)) <= limit:
            low = middle
        else:
            high = middle - 1
    return low
