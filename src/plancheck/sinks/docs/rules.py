"""Reference pages of the rules and of the fact catalogues they read, from the loaded rulebook.

The condition is rendered from the rule file's own `when:` (named conditions, `not` and `in` as
written), each fact linked to its line in the subject's catalogue page; examples become tables of
the facts they give, or the plan document a plan rule is decided on.
"""

from __future__ import annotations

import string
from datetime import date
from pathlib import Path
from typing import Any, Iterable

import yaml

from plancheck.documents.yamlio import read_document
from plancheck.findings import EVENT_BY_SEVERITY
from plancheck.rulebook.conditions import ConditionError, coerce_constant
from plancheck.rulebook.rules import SUBJECTS, Example, Rule, Rulebook
from plancheck.sinks.docs.markdown import cell, code, fact_value, link, link_names, references, table

_OPS = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_SUBJECT_TITLES = {"period": "Period", "withdrawal": "Withdrawal", "plan": "Plan", "yearend": "Year-end"}


def rule_path(rule: Rule) -> str:
    """Where a rule's page lives under the reference folder."""
    return f"rules/{rule.subject}/{rule.id}.md"


def relative_source(rulebook: Rulebook, source: str) -> str:
    """A rule file's path as the repository names it: rules/checks/<subject>/<id>.yaml."""
    path = Path(source)
    try:
        return (Path(rulebook.root.name) / path.relative_to(rulebook.root)).as_posix()
    except ValueError:
        return path.name


class _Conditions:
    """Renders a `when:` of one subject as a nested Markdown list, facts linked to `facts_page`."""

    def __init__(self, rulebook: Rulebook, subject: str, facts_page: str):
        self.catalogue = rulebook.catalogues[subject]
        self.types = rulebook.fact_types(subject)
        self.facts_page = facts_page

    def fact(self, name: str) -> str:
        return link(code(name), f"{self.facts_page}#fact-{name}")

    def constant(self, value: Any, fact_type: str) -> str:
        try:
            return f"**{fact_value(coerce_constant(value, fact_type, 'when'), fact_type)}**"
        except ConditionError:  # the loader already refused such a rule; shown as written all the same
            return f"**{value}**"

    def operand(self, raw: Any, fact_type: str) -> str:
        if isinstance(raw, dict) and "fact" in raw:
            return self.fact(raw["fact"])
        if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("add", "sub"):
            op, (left, right) = next(iter(raw.items()))
            sign = " + " if op == "add" else " − "
            return f"({self.operand(left, fact_type)}{sign}{self.operand(right, fact_type)})"
        return self.constant(raw, fact_type)

    def comparison(self, raw: dict) -> str:
        name = raw["fact"]
        fact_type = self.types.get(name, "count")
        if "in" in raw:
            return f"{self.fact(name)} is one of " + ", ".join(self.constant(v, fact_type) for v in raw["in"])
        op = next(k for k in raw if k != "fact")
        rhs = raw[op]
        if fact_type == "flag" and op in ("eq", "ne") and not isinstance(rhs, dict):
            truth = bool(rhs) == (op == "eq")
            return f"{self.fact(name)} is **{'yes' if truth else 'no'}**"
        return f"{self.fact(name)} {_OPS[op]} {self.operand(rhs, fact_type)}"

    def lines(self, raw: Any, depth: int = 0) -> list[str]:
        pad = "    " * depth
        if "all" in raw or "any" in raw:
            key = "all" if "all" in raw else "any"
            head = "all of:" if key == "all" else "any of:"
            return [f"{pad}- {head}"] + [line for part in raw[key] for line in self.lines(part, depth + 1)]
        if "not" in raw:
            return [f"{pad}- not:"] + self.lines(raw["not"], depth + 1)
        if "condition" in raw:
            name = raw["condition"]
            spec = self.catalogue.conditions[name]
            head = f"{pad}- {link(code(name), f'{self.facts_page}#condition-{name}')}: {cell(spec.description)}"
            return [head] + self.lines(spec.when, depth + 1)
        return [f"{pad}- {self.comparison(raw)}"]

    def render(self, raw: Any) -> str:
        return "\n".join(self.lines(raw))


def _plain(value: Any) -> Any:
    """A document read with line numbers as plain dicts and lists, for yaml.safe_dump."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int, float, date)) or value is None:
        return value
    return str(value)


def _examples(rule: Rule, types: dict[str, str], conditions: _Conditions) -> str:
    fact_examples = [e for e in rule.examples if e.plan is None]
    plan_examples = [e for e in rule.examples if e.plan is not None]
    parts = []
    if fact_examples:
        names = list(dict.fromkeys(name for e in fact_examples for name in e.facts))

        def row(example: Example) -> list[str]:
            values = []
            for name in names:
                raw = example.facts.get(name)
                values.append("—" if raw is None else conditions.constant(raw, types[name]).strip("*"))
            return [example.name, "fires" if example.fires else "does not fire", *values]

        header = ["example", "result", *(code(n) for n in names)]
        parts.append(table(header, [row(e) for e in fact_examples]))
        parts.append("A fact an example does not give is zero (a flag: no).")
    for example in plan_examples:
        verdict = "fires" if example.fires else "does not fire"
        year = f", plan year {example.year}" if example.year else ""
        document = yaml.safe_dump(_plain(example.plan), sort_keys=False, allow_unicode=True).rstrip()
        parts.append(f"**{cell(example.name)}** ({verdict}{year}):\n\n```yaml\n{document}\n```")
    return "\n\n".join(parts)


def _message(template: str) -> str:
    """The message template as a quote, its placeholders as code."""
    quoted = template
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    for placeholder in sorted(names, key=len, reverse=True):
        quoted = quoted.replace("{" + placeholder + "}", f"`{{{placeholder}}}`")
    return "> " + " ".join(quoted.split())


def _linked(text: str, rulebook: Rulebook, parameters: Iterable[str], facts: Iterable[str], to_reference: str,
            own: str = "") -> str:
    """A description with the parameters and other rules it names linked to their pages (a parameter whose
    name is also a fact is left as text)."""
    targets = {p: f"{to_reference}parameters/{p}.md" for p in set(parameters) - set(facts)}
    targets.update({r.id: f"{to_reference}{rule_path(r)}" for r in rulebook.by_id.values() if r.id != own})
    return link_names(text, targets)


def _sources(names: Iterable[str]) -> str:
    return ", then ".join(code(n) for n in names)


def _repair(rule: Rule, conditions: _Conditions) -> str:
    """What the nearest compliant election does about the rule, in a sentence (rulebook/repairs.py)."""
    repair = rule.repair
    assert repair is not None
    if repair.kind == "stop_source":
        does = f"sets {code(repair.source)} to zero in every pay period"
    elif repair.kind == "cut_excess":
        where = "the first pay period" if repair.periods == "first" else "each pay period"
        most = f", never more than {conditions.fact(repair.at_most)}" if repair.at_most else ""
        does = f"cuts the excess of {where} where the rule fires from {_sources(repair.take_from)}{most}"
    elif repair.kind == "cut_growth":
        does = f"cuts what each pay period adds to the year-to-date excess from {_sources(repair.take_from)}"
    elif repair.kind == "move_growth":
        does = (f"moves what each pay period adds to the year-to-date excess from {code(repair.take_from)} to "
                f"{code(repair.to)}, the total unchanged (only where the plan accepts {code(repair.to)})")
    else:
        groups = ", then from ".join(" and ".join(code(n) for n in group) for group in repair.take_from)
        does = (f"cuts the smallest total that clears the excess at the year's last pay period, latest pay period "
                f"first: from {groups}")
    return (f"The nearest compliant election {does}. Repair `{repair.kind}`, tried in order {repair.order} "
            f"(lowest first, one repair a round until none applies).")


def rule_page(rulebook: Rulebook, rule: Rule, parameters: Iterable[str] = ()) -> str:
    facts_page = f"../../facts/{rule.subject}.md"
    conditions = _Conditions(rulebook, rule.subject, facts_page)
    types = rulebook.fact_types(rule.subject)
    source = relative_source(rulebook, rule.source)
    when = read_document(Path(rule.source))["when"]
    about = [
        ["Severity", f"{rule.severity} (a `{EVENT_BY_SEVERITY[rule.severity]}` event)"],
        ["Subject", link(rule.subject, facts_page)],
        ["Citation", rule.citation],
        ["File", code(source)],
    ]
    if rule.subject == "period":
        about.append(["Scope", "every plan of the employer" if rule.scope == "employer" else "this plan"])
        about.append(["Checked on", " and ".join(f"{i}s" for i in sorted(rule.inputs))])
    if rule.raised_by != "engine":
        about.append(["Raised by", f"the {rule.raised_by}, when an input does not load"])
    if rule.locate:
        about.append(["Points at", f"the plan document's {code(rule.locate)}"])
    if rule.test:
        about.append(["Test", rule.test])
    if rule.verdict:
        about.append(["Verdict", ", ".join(f"{code(k)}: {v}" for k, v in rule.verdict.items())])
    if rule.aliases:
        about.append(["Also known as", ", ".join(code(a) for a in rule.aliases)])
    description = _linked(rule.description, rulebook, parameters, types, "../../", own=rule.id)
    out = [f"# {rule.id}", "", f"**{cell(rule.title)}**", "", table(["", ""], about), "", description, ""]
    out += ["## Condition", "", "The rule fires when", "", conditions.render(when), ""]
    out += ["## Finding", ""]
    if rule.report:
        limit = f" against {conditions.fact(rule.report.limit)} (excess = amount − limit)" if rule.report.limit else ""
        out += [f"Reports {conditions.fact(rule.report.amount)} as the amount{limit}.", ""]
    else:
        out += ["Reports no amount.", ""]
    out += ["Message:", "", _message(rule.message), ""]
    if rule.repair:
        out += ["## Repair", "", _repair(rule, conditions), ""]
    if rule.corrections:
        rows = [[code(c.kind), c.citation] for c in rule.corrections]
        out += ["## Corrections", "", table(["correction kind", "citation"], rows), ""]
    out += ["## Examples", "", _examples(rule, types, conditions), ""]
    out += ["## References", "", references(rule.references), ""]
    return "\n".join(out)


def facts_page(rulebook: Rulebook, subject: str, parameters: Iterable[str] = ()) -> str:
    catalogue = rulebook.catalogues[subject]
    conditions = _Conditions(rulebook, subject, "")
    rows = [[f"`{name}`{{#fact-{name}}}", spec.type,
             _linked(spec.description, rulebook, parameters, catalogue.facts, "../")]
            for name, spec in catalogue.facts.items()]
    out = [f"# {_SUBJECT_TITLES.get(subject, subject)} facts", "", catalogue.description, "",
           f"Declared in `rules/facts/{subject}.yaml`: every fact a {subject} rule may read.", "",
           table(["fact", "type", "meaning"], rows), ""]
    if catalogue.conditions:
        out += ["## Named conditions", ""]
        for name, spec in catalogue.conditions.items():
            out += [f"### {name} {{#condition-{name}}}", "", spec.description, "", conditions.render(spec.when), ""]
    readers = rulebook.rules.get(subject, [])
    out += ["## Rules", "", ", ".join(link(code(r.id), f"../{rule_path(r)}") for r in readers) + ".", ""]
    return "\n".join(out)


def rules_index(rulebook: Rulebook) -> str:
    total = sum(len(rules) for rules in rulebook.rules.values())
    out = ["# Rules", "",
           f"{total} rules, one file each under `rules/checks/<subject>/`; ids are permanent. "
           "Generated from the rule files.", ""]
    for subject in SUBJECTS:
        rules = sorted(rulebook.rules.get(subject, []), key=lambda r: (_SEVERITY_ORDER[r.severity], r.id))
        if not rules:
            continue
        rows = [[link(code(r.id), f"{r.subject}/{r.id}.md"), r.severity, r.title, r.citation] for r in rules]
        out += [f"## {_SUBJECT_TITLES.get(subject, subject)} rules", "",
                f"{len(rules)} rules over the {link(subject + ' facts', f'../facts/{subject}.md')}.", "",
                table(["rule", "severity", "title", "citation"], rows), ""]
    return "\n".join(out)
