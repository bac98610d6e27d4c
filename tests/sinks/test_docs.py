"""The documentation site: reference pages generated from rules/ and kept current, and a strict MkDocs build."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from plancheck.documents.yamlio import read_document
from plancheck.money import display_cents
from plancheck.sinks.docs import GENERATED, render_reference, write_reference
from plancheck.sinks.docs.__main__ import main as gen_docs

RULES = ROOT / "rules"
REFERENCE = ROOT / "docs" / "reference"
REGENERATE = "regenerate: python -m plancheck.sinks.docs docs/reference"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return render_reference(RULES)


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.md"))}


def test_committed_reference_pages_are_what_rules_gives(pages):
    """docs/reference/ holds exactly the pages the rule, limit and parameter files give: none missing, stale or edited."""
    committed = _tree(REFERENCE)
    assert sorted(committed) == sorted(pages), REGENERATE
    for path, text in pages.items():
        assert committed[path] == text, f"docs/reference/{path} is out of date; {REGENERATE}"


def test_the_generator_writes_the_committed_pages_into_a_fresh_folder(tmp_path: Path, capsys):
    """`python -m plancheck.sinks.docs DIR` writes into an empty folder the same files as are committed."""
    assert gen_docs([str(tmp_path / "reference"), "--rules-dir", str(RULES)]) == 0
    assert _tree(tmp_path / "reference") == _tree(REFERENCE)


def test_a_page_whose_source_is_gone_is_removed(tmp_path: Path, pages):
    """A rule renamed or removed leaves no page behind: write_reference deletes Markdown files with no source."""
    stale = tmp_path / "rules" / "period" / "a-rule-since-renamed.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("# gone\n")
    removed = write_reference(pages, tmp_path)
    assert removed == [stale] and not stale.exists()
    assert sorted(_tree(tmp_path)) == sorted(pages)


def test_bad_rules_are_exit_2_naming_the_file(tmp_path: Path, capsys):
    """A rules directory that does not load writes nothing and says which file is wrong."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "limits" / "catch_up_limit.yaml").unlink()
    assert gen_docs([str(tmp_path / "out"), "--rules-dir", str(rules)]) == 2
    assert "catch_up_limit.yaml" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_rule_has_a_page_listed_in_the_index(pages, rulebook):
    """Each rule's page exists and the rules index links it, with its severity and citation."""
    index = pages["rules/index.md"]
    assert len(rulebook.by_id) > 40
    for rule in rulebook.by_id.values():
        page = pages[f"rules/{rule.subject}/{rule.id}.md"]
        assert page.startswith(GENERATED) and f"# {rule.id}\n" in page
        row = next(line for line in index.splitlines() if f"({rule.subject}/{rule.id}.md)" in line)
        assert f"| {rule.severity} |" in row and rule.citation in row


def _facts_read(when) -> set[str]:
    """Every fact a condition as written names (named conditions left as their names)."""
    if isinstance(when, dict):
        found = {when["fact"]} if isinstance(when.get("fact"), str) else set()
        return found.union(*(_facts_read(v) for v in when.values()))
    if isinstance(when, list):
        return set().union(*(_facts_read(v) for v in when))
    return set()


def test_a_rule_page_gives_citation_condition_message_and_every_example(pages, rulebook):
    """A rule page carries the rule's citation, each fact its condition reads, its message and each example."""
    for rule in rulebook.by_id.values():
        page = pages[f"rules/{rule.subject}/{rule.id}.md"]
        citation = rule.citation.replace("|", "\\|")
        assert f"| Citation | {citation} |" in page
        condition = page.split("## Condition", 1)[1].split("## Finding", 1)[0]
        for fact in _facts_read(read_document(RULES / "checks" / rule.subject / f"{rule.id}.yaml")["when"]):
            assert f"#fact-{fact})" in condition, (rule.id, fact)
        first_words = " ".join(rule.message.split()[:3]).replace("{", "`{").replace("}", "}`")
        assert first_words in page, rule.id
        for example in rule.examples:
            assert example.name in page, (rule.id, example.name)


def test_example_figures_are_shown_as_money(pages):
    """The 402(g) examples give their dollar facts as an administrator reads them, from the rule file."""
    page = pages["rules/period/402g-deferral-limit.md"]
    assert "| one cent over the 2024 limit fires | fires | $23,000.01 | $23,000.00 |" in page


def _as_irs_prints(cents: int | None) -> str:
    if cents is None:
        return "—"
    return f"${cents // 100:,}" if cents % 100 == 0 else display_cents(cents)


def test_every_limit_page_gives_each_year_its_figure_and_notice(pages, limits):
    """Each limit's page and the limits index carry every year's figure from its file, with its citation,
    and the indexing block: step, citation and minimum where there is one."""
    index = pages["limits/index.md"]
    for family_id, family in limits.families.items():
        page = pages[f"limits/{family_id}.md"]
        assert f"({family_id}.md)" in index
        for year, value in family.values.items():
            figure = _as_irs_prints(value.amount)
            assert f"| {year} | {figure} | {value.citation} |" in page, (family_id, year)
        assert f"a multiple of {_as_irs_prints(family.indexing.step)} |" in page
        assert f"| Citation | {family.indexing.citation} |" in page
        if family.indexing.minimum is not None:
            assert f"| Minimum | {_as_irs_prints(family.indexing.minimum)} ({family.indexing.minimum_citation}) |" in page


def test_every_parameter_has_a_page_listed_in_the_index(pages, limits):
    """Each parameter's page gives its unit and section, and the parameters index links it."""
    index = pages["parameters/index.md"]
    for parameter_id, parameter in limits.parameters.items():
        page = pages[f"parameters/{parameter_id}.md"]
        assert f"[`{parameter_id}`]({parameter_id}.md)" in index
        assert f"| Unit | {parameter.unit} |" in page and f"| Section | {parameter.section} |" in page
        for number, tier in enumerate(parameter.tiers or [], 1):
            rate, bound = format(tier.rate.normalize(), "f"), format(tier.up_to_percent.normalize(), "f")
            assert f"| {number} | {rate}% | {bound}% |" in page, (parameter_id, number)


def test_a_figure_changed_in_rules_changes_the_page(tmp_path: Path):
    """The pages are made from the files, not typed: a 2026 402(g) figure edited in a copy of rules/ shows."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / "limits" / "elective_deferral_limit.yaml"
    text = path.read_text()
    edited = re.sub(r"(2026: \{amount: )\d+", r"\g<1>24555", text)
    assert edited != text
    path.write_text(edited)
    changed = render_reference(rules)
    assert "| 2026 | $24,555 |" in changed["limits/elective_deferral_limit.md"]
    assert "$24,555 |" in changed["limits/index.md"]


def test_no_file_cites_notes_outside_the_repository():
    """Source, tests and benchmarks cite the project's own docs pages (docs/design/...), which exist,
    never notes kept outside the repository."""
    cited = set()
    for folder in ("src", "tests", "benchmarks", "scripts"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", "") or not path.is_file():
                continue
            text = path.read_text(errors="replace")
            assert not re.search(r"\bshared/[A-Z_]+\.md", text), path
            cited |= set(re.findall(r"\bdocs/[\w./-]+\.md\b", text))
    assert "docs/design/durable-rules.md" in cited and "docs/design/domain.md" in cited
    for page in cited:
        assert (ROOT / page).exists(), page


def test_the_first_check_of_getting_started_is_what_plancheck_answers():
    """The election and the finding shown in getting-started.md are what the command prints today."""
    page = (ROOT / "docs" / "getting-started.md").read_text()
    command = re.search(r"\.venv/bin/plancheck (election \S+ --plan \S+)\n", page.split("## A first check")[1])
    shown = json.loads(re.search(r"```json\n(.*?)\n```", page, re.S).group(1))
    result = plancheck(*command.group(1).split())
    assert result.returncode == 1
    first = json.loads(result.stdout.splitlines()[0])
    assert {k: v for k, v in first.items() if k != "ruleset_revision"} == \
        {k: v for k, v in shown.items() if k != "ruleset_revision"}


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


requires_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (the docs extra, part of dev: pip install -e '.[docs]')")


@requires_mkdocs
def test_the_site_builds_strict(tmp_path: Path):
    """`mkdocs build --strict` succeeds: every page in the nav exists, and no link or anchor is broken."""
    result = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "reference" / "rules" / "period" / "402g-deferral-limit" / "index.html").exists()
    assert (site / "openapi.json").exists() and (site / "report-screenshot.png").exists()
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()


@requires_mkdocs
def test_a_broken_link_fails_the_strict_build(tmp_path: Path):
    """The strict build is a real check: a page linking to a missing anchor of another page fails it."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copy(ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    with (tmp_path / "docs" / "nothing-lost.md").open("a") as page:
        page.write("\nSee [the exit statuses](events.md#no-such-section).\n")
    result = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-section" in result.stderr


def test_parameters_named_in_descriptions_link_to_their_pages(pages, rulebook, limits):
    """A fact's description that names a parameter links to that parameter's page; a name that is also a fact
    (annual_additions_limit is both a limit file and a period fact) is left as text."""
    period = pages["facts/period.md"]
    assert "[`catch_up_eligibility_age`](../parameters/catch_up_eligibility_age.md)" in period
    linked = set(re.findall(r"\]\(\.\./parameters/(\w+)\.md\)", "".join(pages[f"facts/{s}.md"] for s in
                                                                      rulebook.catalogues)))
    assert linked and linked <= set(limits.parameters)
    assert "(../parameters/annual_additions_limit.md)" not in period


def test_the_reference_index_leads_to_every_page(pages):
    """Every generated page is linked from the reference index or from the index of its kind."""
    linked = set()
    for index in ("index.md", "rules/index.md", "limits/index.md", "parameters/index.md"):
        folder = Path(index).parent
        for target in re.findall(r"\]\(([\w./-]+\.md)\)", pages[index]):
            linked.add((folder / target).as_posix())
    assert set(pages) - {"index.md"} <= linked, sorted(set(pages) - {"index.md"} - linked)
