"""Where plancheck finds its rules/, plans/ and samples/.

In order: a command's own option (--rules-dir, --plans: the caller's business), then $PLANCHECK_HOME (a
directory holding rules/ and plans/, as `plancheck init DIR` writes it), then the checkout this package
runs from (its src/ beside rules/), then the copy bundled in the installed package (setup.py copies the
repository's rules/, plans/ and samples/ into plancheck/_bundled/ when it builds a wheel).
"""

from __future__ import annotations

import os
from pathlib import Path

from plancheck.errors import InputError, Problem

#: The directories plancheck reads, by name.
KINDS = ("rules", "plans", "samples")
HOME_VARIABLE = "PLANCHECK_HOME"
_HERE = Path(__file__).resolve()  # <package>/rulebook/resources.py


def home() -> Path | None:
    """$PLANCHECK_HOME, where it is set and not empty."""
    value = os.environ.get(HOME_VARIABLE, "")
    return Path(value).expanduser() if value else None


def checkout_root() -> Path | None:
    """The repository this package runs from (src/plancheck beside rules/), None for an installed package."""
    root = _HERE.parents[3]
    return root if _HERE.parents[2].name == "src" and (root / "rules" / "limits").is_dir() else None


def bundled_root() -> Path | None:
    """The copy of rules/, plans/ and samples/ the wheel carries, None in a checkout that was never built."""
    root = _HERE.parents[1] / "_bundled"
    return root if (root / "rules").is_dir() else None


def packaged(kind: str) -> tuple[Path, str]:
    """This plancheck's own `kind` directory and which copy it is ("checkout" or "bundled"); $PLANCHECK_HOME
    is not looked at (`plancheck init` copies from here)."""
    for root, origin in ((checkout_root(), "checkout"), (bundled_root(), "bundled")):
        if root is not None and (root / kind).is_dir():
            return root / kind, origin
    raise InputError(Problem("plancheck", "", f"this installation has no {kind}/ directory (a wheel built without "
                             f"setup.py's copy?): give --rules-dir and --plans, or set {HOME_VARIABLE}"))


def locate(kind: str) -> tuple[Path, str]:
    """The `kind` directory a command uses when no option names one, and where it was found: "PLANCHECK_HOME",
    "checkout" or "bundled". A PLANCHECK_HOME without that directory is an error, not a fall-back: a mistyped
    home must not quietly check payroll against the sample plans."""
    env = home()
    if env is None:
        return packaged(kind)
    path = env / kind
    if not path.is_dir():
        raise InputError(Problem(f"{HOME_VARIABLE}={env}", "", f"no {kind}/ directory there (`plancheck init "
                                 f"{env}` writes a starter rules/ and plans/)"))
    return path, HOME_VARIABLE


def default_rules_dir() -> Path:
    return locate("rules")[0]


def default_plans_dir() -> Path:
    return locate("plans")[0]
