"""The year-end figures of each census row (`Employees`): who is eligible, an HCE or a key employee, and what
each test and correction counted and took; filled in by facts/yearend.py and the modules it puts together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Employees:
    """Per-row results, aligned with the census rows."""

    plan_pay: np.ndarray
    eligible: np.ndarray
    entry: np.ndarray
    hce: np.ndarray
    hce_reasons: np.ndarray
    ownership: np.ndarray             # with 318 attribution, this year (ppm)
    prior_year_ownership: np.ndarray
    key: np.ndarray
    key_reasons: np.ndarray
    catch_up_limit: np.ndarray
    catch_up: np.ndarray              # deferrals that are catch-up before the ADP test
    excess_deferral: np.ndarray       # above 402(g): plan level (401(a)(30)) or the individual's (402(g)(1)), the larger
    adp_amount: np.ndarray            # deferrals the ADP test counts
    adr: np.ndarray
    adp_excess: np.ndarray            # allocated excess contributions (before recharacterization)
    recharacterized: np.ndarray       # of them, treated as catch-up
    adp_distribution: np.ndarray
    match_forfeited: np.ndarray
    acp_amount: np.ndarray
    acr: np.ndarray
    acp_excess: np.ndarray
    acp_from_after_tax: np.ndarray
    acp_from_match: np.ndarray
    top_heavy_minimum: np.ndarray
    employer_deferrals: np.ndarray    # the person's deferrals in every plan of the employer (401(a)(30))
    person: np.ndarray                # a person's number: the same employee_id at the same employer
