"""Plan documents: the samples load, the schema exports, bad documents say where and why."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from helpers import plancheck
from plancheck.documents.plan import Plan, load_plan
from plancheck.documents.yamlio import parse_yaml
from plancheck.errors import InputError


def test_sample_plans_cover_the_required_designs(plans):
    """A mega-backdoor plan, a plain safe-harbor plan, and a per-period tiered match without true-up."""
    mega = plans["acme-mega-backdoor"]
    assert mega.contributions.after_tax and mega.in_service_withdrawals.after_tax.allowed
    assert mega.in_plan_roth_conversion.allowed
    safe = plans["bayside-safe-harbor"]
    assert safe.safe_harbor == "basic_match" and not safe.contributions.roth and not safe.contributions.after_tax
    tiered = plans["cedar-tiered-match"]
    assert len(tiered.match.tiers) == 2 and tiered.match.basis == "per_period" and not tiered.match.true_up


def test_exported_schema_validates_every_sample_plan(root: Path):
    """`plancheck schema plan` is a JSON Schema every bundled plan satisfies."""
    out = plancheck("schema", "plan")
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in sorted((root / "plans").glob("*.yaml")):
        jsonschema.validate(parse_yaml(path.read_text(), str(path)), schema)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


BASE = """plan_id: p1
name: Test plan
payroll: {frequency: monthly}
"""


def test_unknown_key_names_file_line_and_key(tmp_path):
    """A misspelt key is an error with its line, not silently dropped."""
    path = write(tmp_path, BASE + "contributions:\n  pretax: true\n  after_tx: true\n")
    with pytest.raises(InputError) as info:
        load_plan(path)
    assert f"{path}:6: contributions.after_tx: unknown key" in str(info.value)


def test_percentages_over_100_are_rejected(tmp_path):
    """A match tier of 150% of pay is refused with what was expected."""
    path = write(tmp_path, BASE + "match:\n  tiers:\n    - {rate: 50, up_to_percent: 150}\n")
    with pytest.raises(InputError, match="from 0 to 100"):
        load_plan(path)


def test_tiers_must_increase(tmp_path):
    """Match tiers stack upward; a lower bound after a higher one is an error."""
    path = write(tmp_path, BASE + "match:\n  tiers:\n    - {rate: 100, up_to_percent: 4}\n"
                                  "    - {rate: 50, up_to_percent: 3}\n")
    with pytest.raises(InputError, match="strictly increasing"):
        load_plan(path)


def test_biweekly_needs_an_anchor_date(tmp_path):
    """Stepped payrolls cannot place pay dates without one real pay date."""
    path = write(tmp_path, "plan_id: p1\nname: T\npayroll: {frequency: biweekly}\n")
    with pytest.raises(InputError, match="anchor_pay_date"):
        load_plan(path)


def test_impossible_date_is_reported_with_its_field(tmp_path):
    """2024-02-30 is an input error on its key, not a crash in the YAML parser."""
    path = write(tmp_path, "plan_id: p1\nname: T\npayroll: {frequency: weekly, anchor_pay_date: 2024-02-30}\n")
    with pytest.raises(InputError) as info:
        load_plan(path)
    assert "payroll.anchor_pay_date" in str(info.value) and ":3:" in str(info.value)


def test_malformed_yaml_reports_the_line(tmp_path):
    """A syntax error names its line."""
    path = write(tmp_path, BASE + "match:\n  tiers: [\n")
    with pytest.raises(InputError, match=r"plan.yaml:\d+: invalid YAML"):
        load_plan(path)


def test_non_calendar_plan_years_are_refused_with_the_reason(tmp_path):
    """Fiscal plan years are not supported, and the error says why."""
    path = write(tmp_path, BASE + "plan_year_begins: '07-01'\n")
    with pytest.raises(InputError, match="calendar-year"):
        load_plan(path)


def test_plan_model_is_frozen():
    """Plans are values."""
    plan = Plan.model_validate({"plan_id": "p", "name": "n", "payroll": {"frequency": "monthly"}})
    with pytest.raises(ValidationError, match="frozen"):
        plan.name = "other"  # type: ignore[misc]


def test_committed_schemas_are_current(root: Path):
    """schema/*.schema.json, referenced by the plan files, match the models."""
    for kind in ("plan", "election", "rule", "withdrawal"):
        out = plancheck("schema", kind).stdout
        assert (root / "schema" / f"{kind}.schema.json").read_text() == out, f"run: plancheck schema {kind}"
