"""The reference part of the documentation site, generated from rules/: a page per rule, fact catalogue,
limit and parameter, and index pages with tables of them all.

`python -m plancheck.sinks.docs docs/reference` (or `scripts/gen_docs`) rewrites the committed pages;
tests/sinks/test_docs.py holds them equal to what the rules directory gives, as it does schema/ and
docs/openapi.json.
"""

from __future__ import annotations

from pathlib import Path

from plancheck.checks.ruleset import load_rules
from plancheck.rulebook.rules import SUBJECTS
from plancheck.sinks.docs.figures import limit_pages
from plancheck.sinks.docs.markdown import link
from plancheck.sinks.docs.rules import facts_page, rule_page, rule_path, rules_index
from plancheck.sinks.files import replacing

#: The first line of every generated page: an editor sees where the page comes from.
GENERATED = "<!-- Generated from rules/ by `python -m plancheck.sinks.docs docs/reference`: do not edit. -->\n\n"


def _index(counts: dict[str, int], subjects: list[str]) -> str:
    facts = ", ".join(link(s, f"facts/{s}.md") for s in subjects)
    return "\n".join([
        "# Reference", "",
        "Every page of this part is generated from the files under `rules/`, so each figure, citation, "
        "message and example is the one plancheck runs with.", "",
        f"- {link('Rules', 'rules/index.md')}: {counts['rules']} rules, each with its citation, severity, "
        "condition, message and the examples the test suite runs through the engine.",
        f"- {link('Limits', 'limits/index.md')}: {counts['limits']} IRS dollar limits, every year's figure with "
        "the notice that published it, and how each is indexed.",
        f"- {link('Parameters', 'parameters/index.md')}: {counts['parameters']} figures of the law that are not "
        "yearly dollar limits.",
        f"- Facts the rules read, by subject: {facts}.", "",
    ])


def render_reference(rules_dir: Path) -> dict[str, str]:
    """Every reference page, keyed by its path under the reference folder."""
    rulebook, limits = load_rules(rules_dir.resolve())
    subjects = [s for s in SUBJECTS if s in rulebook.catalogues]
    pages: dict[str, str] = {"rules/index.md": rules_index(rulebook)}
    for subject in subjects:
        pages[f"facts/{subject}.md"] = facts_page(rulebook, subject, limits.parameters)
        for rule in rulebook.rules[subject]:
            pages[rule_path(rule)] = rule_page(rulebook, rule, limits.parameters)
    pages.update(limit_pages(limits))
    counts = {"rules": len(rulebook.by_id), "limits": len(limits.families), "parameters": len(limits.parameters)}
    pages["index.md"] = _index(counts, subjects)
    return {path: GENERATED + text for path, text in sorted(pages.items())}


def write_reference(pages: dict[str, str], out_dir: Path) -> list[Path]:
    """Write the pages under out_dir and remove the Markdown files there that no longer have a source
    (a rule renamed or removed); returns the files removed."""
    for relative, text in pages.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            with replacing(path) as stream:  # plancheck's one way to write a file: never through a link, atomic
                stream.write(text.encode("utf-8"))
    stale = [p for p in out_dir.rglob("*.md") if p.relative_to(out_dir).as_posix() not in pages]
    for path in stale:
        path.unlink()
    return stale
