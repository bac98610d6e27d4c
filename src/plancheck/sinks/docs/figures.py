"""Reference pages of the limits (rules/limits/) and parameters (rules/parameters/), from the loaded table."""

from __future__ import annotations

from plancheck.rulebook.limits import LimitFamily, LimitTable
from plancheck.rulebook.parameters import Parameter
from plancheck.sinks.docs.markdown import code, decimal_text, dollars, link, references, table, with_unit


def _source(sources: dict[str, str], family_id: str) -> str:
    return f"rules/limits/{family_id}.yaml" if family_id in sources else family_id


def limit_page(family: LimitFamily, source: str) -> str:
    rows = []
    for year in sorted(family.values):
        value = family.values[year]
        rows.append([str(year), dollars(value.amount), value.citation, value.note or ""])
    indexing = family.indexing
    index_rows = [["Step", f"increases are rounded down to a multiple of {dollars(indexing.step)}"],
                  ["Citation", indexing.citation]]
    if indexing.minimum is not None:
        index_rows.append(["Minimum", f"{dollars(indexing.minimum)} ({indexing.minimum_citation})"])
    out = [
        f"# {family.title}", "",
        table(["", ""], [["Id", code(family.id)], ["Section", family.section], ["Unit", family.unit],
                         ["File", code(source)]]), "",
        family.description, "",
        "## Figures by year", "",
        table(["year", "amount", "citation", "note"], rows, align=[":", ":", "-", "-"]), "",
        "A year's figure is published in an IRS notice of the year before; `plancheck audit --rules` holds "
        "each figure's citation to it.", "",
        "## Indexing", "",
        "How the figure moves from one year to the next (cost-of-living increases under 415(d), never a "
        "decrease; `plancheck audit --rules` checks every year against it):", "",
        table(["", ""], index_rows), "",
        "## References", "", references(family.references), "",
    ]
    return "\n".join(out)


def limits_index(table_: LimitTable) -> str:
    years = sorted({year for family in table_.families.values() for year in family.values})
    rows = []
    for family_id in sorted(table_.families):
        family = table_.families[family_id]
        amounts = [dollars(family.values[y].amount) if y in family.values else "" for y in years]
        rows.append([link(family.title, f"{family_id}.md"), family.section, *amounts])
    header = ["limit", "section", *(str(y) for y in years)]
    out = ["# Limits", "",
           f"IRS dollar limits by calendar year, {years[0]}-{years[-1]}: one file per limit under "
           "`rules/limits/`, each year's figure with the IRS notice that published it. A dash: the limit "
           "was not in force that year (the file says why); blank: the file starts later. Generated from the limit files.", "",
           table(header, rows, align=["-", "-", *([":"] * len(years))]), ""]
    return "\n".join(out)


def _value(parameter: Parameter) -> str:
    if parameter.value is not None:
        return with_unit(parameter.value, parameter.unit)
    tiers = parameter.tiers or []
    steps = [f"{decimal_text(t.rate)}% of deferrals up to {decimal_text(t.up_to_percent)}% of pay" if i == 0
             else f"{decimal_text(t.rate)}% of those up to {decimal_text(t.up_to_percent)}%"
             for i, t in enumerate(tiers)]
    return ", then ".join(steps)


def parameter_page(parameter: Parameter) -> str:
    out = [
        f"# {parameter.title}", "",
        table(["", ""], [["Id", code(parameter.id)], ["Value", _value(parameter)], ["Unit", parameter.unit],
                         ["Section", parameter.section], ["File", code(f"rules/parameters/{parameter.id}.yaml")]]),
        "", parameter.description, "",
    ]
    if parameter.tiers:
        rows = [[str(i), f"{decimal_text(t.rate)}%", f"{decimal_text(t.up_to_percent)}%"]
                for i, t in enumerate(parameter.tiers, 1)]
        out += ["## Tiers", "", table(["tier", "rate", "up to % of pay"], rows, align=[":", ":", ":"]), ""]
    out += ["## References", "", references(parameter.references), ""]
    return "\n".join(out)


def parameters_index(parameters: dict[str, Parameter]) -> str:
    rows = [[link(code(pid), f"{pid}.md"), p.title, _value(p), p.section]
            for pid, p in sorted(parameters.items())]
    out = ["# Parameters", "",
           "Figures of the law that are not yearly dollar limits (ages, percentages, deadlines, match formulas): "
           "one file each under `rules/parameters/`, with the section of law it comes from. Generated from "
           "the parameter files.", "",
           table(["parameter", "title", "value", "section"], rows), ""]
    return "\n".join(out)


def limit_pages(limits: LimitTable) -> dict[str, str]:
    pages = {"limits/index.md": limits_index(limits)}
    for family_id, family in limits.families.items():
        pages[f"limits/{family_id}.md"] = limit_page(family, _source(limits.sources, family_id))
    pages["parameters/index.md"] = parameters_index(limits.parameters)
    for parameter_id, parameter in limits.parameters.items():
        pages[f"parameters/{parameter_id}.md"] = parameter_page(parameter)
    return pages
