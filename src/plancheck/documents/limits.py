"""Moved: the limits and parameters are the rulebook's (plancheck.rulebook.limits, plancheck.rulebook.parameters).

This name stays only while other branches rewrite the modules that still import it (cli.py,
service/state.py, facts/yearend.py, checks/nearest.py); it goes once
`grep -rn documents.limits src tests` finds nothing.
"""

from plancheck.rulebook.limits import LimitFamily, LimitTable, LimitValue, YearLimits, load_limits  # noqa: F401
from plancheck.rulebook.parameters import Parameter, ParameterTier, load_parameters  # noqa: F401
