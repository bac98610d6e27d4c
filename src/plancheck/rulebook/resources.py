"""Where the bundled rules/, plans/ and samples/ live."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding rules/: $PLANCHECK_HOME, else the nearest parent of this package that has one."""
    env = os.environ.get("PLANCHECK_HOME")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "rules" / "limits").is_dir():
            return parent
    return Path.cwd()


def default_rules_dir() -> Path:
    return project_root() / "rules"


def default_plans_dir() -> Path:
    return project_root() / "plans"
