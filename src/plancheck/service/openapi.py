"""Print the service's OpenAPI document: `python -m plancheck.service.openapi > docs/openapi.json`.

The committed copy is checked against the served one by the tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from plancheck.service.app import Settings, create_app


def document() -> dict:
    """The OpenAPI document of the app (it does not depend on the rules or plans loaded)."""
    return create_app(Settings(rules_dir=Path("rules"), plans_dir=Path("plans"))).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
