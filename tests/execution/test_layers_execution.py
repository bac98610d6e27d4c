"""Where a run's tasks run is a package of its own, below the checks; the law is loaded in one place."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from helpers import ROOT
from plancheck import rulebook
from plancheck.checks.ruleset import built_facts
from plancheck.errors import InputError
from plancheck.rulebook.limits import load_limits
from plancheck.rulebook.rules import load_rulebook

PACKAGE = ROOT / "src" / "plancheck"
#: What the execution package may import of plancheck: itself, the shared vocabulary, and one seam (a worker asks
#: a feed's Source whether it can read it before any work).
ALLOWED = ("plancheck.execution", "plancheck.errors", "plancheck.safe_open")
SEAMS = {("cluster.py", "plancheck.documents.feed.source")}


def _plancheck_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "plancheck":
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "plancheck"}
    return names


def test_the_execution_package_imports_nothing_of_the_law_or_the_checks():
    """execution/ runs tasks and keeps their files: it imports no check, fact, rule, engine or document module
    but the one seam it declares, so every arrow between it and checks/batch points down into it."""
    modules = sorted((PACKAGE / "execution").glob("*.py"))
    assert {m.name for m in modules} >= {"local.py", "cluster.py", "partition.py", "rundir.py", "process.py"}
    wrong = {(m.name, name) for m in modules for name in _plancheck_imports(m)
             if not name.startswith(ALLOWED)} - SEAMS
    assert wrong == set()


def test_the_batch_package_holds_no_process_pool_dask_or_rlimit():
    """checks/batch/ is what a partition means and the order of the phases: no pool, cluster or process setting."""
    text = "\n".join(path.read_text() for path in (PACKAGE / "checks" / "batch").glob("*.py"))
    for machinery in ("ProcessPoolExecutor", "distributed", "setrlimit", "mallopt", "multiprocessing", "RLIMIT"):
        assert machinery not in text, machinery


def test_one_load_gives_the_rules_the_limits_and_the_parameters_of_a_rules_directory():
    """rulebook.load reads what load_rulebook and load_limits read, and the parameters come with the limits."""
    law = rulebook.load(ROOT / "rules", built_facts())
    rules, limits = law
    assert rules.revision == load_rulebook(ROOT / "rules").revision
    assert (limits.first_year, limits.last_year) == (2023, 2026) == (load_limits(ROOT / "rules" / "limits").first_year,
                                                                      load_limits(ROOT / "rules" / "limits").last_year)
    assert law.parameters is limits.parameters and "catch_up_eligibility_age" in law.parameters


def test_a_catalogue_out_of_step_with_the_code_is_the_error_before_any_limit_is_read(tmp_path):
    """With the facts the code builds given, a catalogue declaring one it does not build is refused first,
    even when the limits are missing too; without them the missing limits are the error."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    shutil.rmtree(rules / "limits")
    built = built_facts()
    short = {**built, "period": built["period"] - {"ytd_deferrals"}}
    with pytest.raises(InputError) as caught:
        rulebook.load(rules, short)
    assert "ytd_deferrals" in str(caught.value) and "limits" not in str(caught.value.problems[0].source)
    with pytest.raises(InputError) as caught:
        rulebook.load(rules)
    assert "limits" in str(caught.value)
