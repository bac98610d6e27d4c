"""The year-end tests as an administrator reads them: per plan, the groups, the tests, the fixes."""

from __future__ import annotations

from typing import Any

from plancheck.money import display_cents, parse_cents

_KIND = {
    "excess_deferral": "distribute excess deferral (402(g))",
    "adp_recharacterized_as_catch_up": "recharacterize as catch-up",
    "adp_excess_distribution": "distribute ADP excess",
    "match_forfeiture": "forfeit match on distributed deferrals",
    "acp_excess_distribution": "distribute ACP excess",
    "top_heavy_minimum": "contribute top-heavy minimum",
    "roth_catch_up_to_roth": "make pretax catch-up Roth (414(v)(7))",
    "adp_recharacterized_to_roth": "make recharacterized catch-up Roth or distribute it (414(v)(7))",
    "annual_additions_after_tax": "return after-tax contributions (415(c))",
    "annual_additions_deferrals": "return elective deferrals (415(c))",
    "annual_additions_match_forfeited": "forfeit match on returned deferrals (415(c))",
    "annual_additions_nonelective": "take out nonelective money (415(c))",
    "annual_additions_forfeitures": "take out forfeitures allocated (415(c))",
    "annual_additions_match": "take out match (415(c))",
}


def _money(text: str) -> str:
    return display_cents(parse_cents(text))


def _test_lines(name: str, test: dict[str, Any]) -> list[str]:
    if not test["tested"]:
        return [f"  {name} test: not run ({test['not_tested_because']})"]
    verdict = "PASS" if test["passed"] else "FAIL"
    lines = [f"  {name} test ({test['method'].replace('_', '-')}): HCEs {test['hce']}%  NHCEs {test['nhce']}%  "
             f"limit {test['limit']}% (x1.25 {test['limit_basic']}%, x2/+2 {test['limit_alternative']}%)  "
             f"{verdict}, margin {test['margin']} points"]
    if not test["passed"]:
        lines.append(f"    excess {_money(test['excess'])}")
    return lines


def yearend_text(summaries: list[dict], hces: list[dict], corrections: list[dict], run: dict[str, Any],
                 previews: list[dict] | None = None) -> str:
    """The whole report as text."""
    projected = f" projected to December 31 from {run['preview_as_of']}" if run.get("preview_as_of") else ""
    out = [f"Year-end tests {run['year']}{projected} - {run['census']}: {run['rows_read']:,} rows read, "
           f"{run['rows_checked']:,} checked, {run['rows_rejected']:,} rejected"
           + (f" (see {run['rejects_file']})" if run["rows_rejected"] else "")]
    if feed := run.get("feed"):
        out.append(f"Contributions from {feed['feed']}: {feed['rows_read']:,} rows read, {feed['rows_used']:,} used, "
                   f"{feed['rows_rejected']:,} rejected ({feed['rows_unmatched']:,} matching no census row), "
                   f"{feed['rows_outside_year']:,} paid in another year"
                   + (f" (see {feed['rejects_file']})" if feed["rows_rejected"] else ""))
    for summary in summaries:
        plan_id = summary["plan_id"]
        out.append("")
        out.append(f"Plan {plan_id}: {summary['eligible']:,} eligible of {summary['employees']:,} employees; "
                   f"{summary['hces']:,} HCEs, {summary['nhces']:,} NHCEs")
        out += _test_lines("ADP", summary["adp"])
        out += _test_lines("ACP", summary["acp"])
        heavy = summary["top_heavy"]
        if heavy["exempt"]:
            out.append("  Top-heavy: exempt (deferrals and safe-harbor contributions only, 416(g)(4)(H))")
        else:
            state = "TOP-HEAVY" if heavy["top_heavy"] else "not top-heavy"
            if heavy.get("aggregation"):
                state += (f" ({heavy['aggregation']} aggregation group: {', '.join(heavy['group'])}"
                          + ("; this plan is not in the required group" if not heavy["required_group"] else "") + ")")
            out.append(f"  Top-heavy: key employees ({heavy['key_employees']}) hold {heavy['ratio']}% of "
                       f"{_money(heavy['account_balances'])} (limit {heavy['limit']}%): {state}"
                       + (f"; minimum owed {_money(heavy['minimum_owed'])}" if heavy["top_heavy"] else ""))
        out += _employer_lines(summary)
        plan_hces = [h for h in hces if h["plan_id"] == plan_id]
        if plan_hces:
            out.append("  HCEs:")
            for h in plan_hces:
                why = "; ".join(_reason(r) for r in h["reasons"])
                status = f"ADR {h['adr']}%  ACR {h['acr']}%" if h["eligible"] else "not eligible in the year"
                if h["eligible"] and len(h.get("ratio_plans", [])) > 1:
                    status += f" (one ratio from plans {', '.join(h['ratio_plans'])})"
                out.append(f"    {h['employee_id']}: {status}  ({why})")
        plan_corrections = [c for c in corrections if c["plan_id"] == plan_id]
        if plan_corrections:
            out.append("  Corrections:")
            for c in plan_corrections:
                by = ""
                if c["kind"] == "roth_catch_up_to_roth":
                    by = f" (on the Form W-2 by {c['deadline']}, else in-plan Roth rollover by {c['final_deadline']})"
                elif c["deadline"]:
                    by = f" by {c['deadline']}"
                    if c["final_deadline"]:
                        by += f" (excise-free; at the latest {c['final_deadline']})"
                across = ""
                if c.get("employer_deferrals"):
                    across = (f" (deferred {_money(c['employer_deferrals'])} in the employer's plans: "
                              + ", ".join(f"{plan} {_money(amount)}" for plan, amount in c["plan_deferrals"].items())
                              + ")")
                out.append(f"    {c['employee_id']}: {_KIND[c['kind']]} {_money(c['amount'])}{across}{by}  "
                           f"[{c['citation']}]")
        plan_previews = [p for p in previews or [] if p["plan_id"] == plan_id]
        if plan_previews:
            caps = plan_previews[0]
            out.append(f"  Rest of the year for HCEs (caps: deferrals {caps['adp_cap'] or 'none'}%, "
                       f"match + after-tax {caps['acp_cap'] or 'none'}% of pay):")
            for p in plan_previews:
                cannot = [t for t in ("adp", "acp") if not p[f"{t}_can_pass"]]
                note = f"  (the {' and '.join(t.upper() for t in cannot)} fails on what is already in)" if cannot else ""
                out.append(f"    {p['employee_id']}: defer at most {_money(p['remaining_deferral'])} "
                           f"({_money(p['remaining_deferral_per_period'])} a pay period), after-tax at most "
                           f"{_money(p['remaining_after_tax'])} ({_money(p['remaining_after_tax_per_period'])}){note}")
    return "\n".join(out) + "\n"


def _employer_lines(summary: dict[str, Any]) -> list[str]:
    """Roth catch-up and 415(c), counted across the employer's plans (only where there is something to say)."""
    lines = []
    roth, additions = summary.get("roth_catch_up"), summary.get("annual_additions")
    if roth and roth["in_force"] and roth["employees"]:
        lines.append(f"  Roth catch-up (414(v)(7)): {_money(roth['pretax'])} of catch-up made pretax, to make Roth "
                     f"({roth['employees']} participant(s))")
    if roth and roth["in_force"] and parse_cents(roth["not_allowed_without_roth"]):
        lines.append(f"  Roth catch-up (414(v)(7)): no Roth in the plan, so {_money(roth['not_allowed_without_roth'])}"
                     " that would be catch-up is excess deferrals")
    if roth and roth["in_force"] and parse_cents(roth["wages_unknown_pretax"]):
        lines.append(f"  Roth catch-up: {_money(roth['wages_unknown_pretax'])} of pretax catch-up with prior-year "
                     "FICA wages unknown")
    if additions and additions["employees_over_415c"]:
        lines.append(f"  415(c) across the employer's plans: {additions['employees_over_415c']} participant(s) over, "
                     f"{_money(additions['excess'])} in all; {_money(additions['corrected_in_plan'])} corrected in "
                     "this plan")
    return lines


def _reason(reason: dict[str, Any]) -> str:
    if reason["reason"] == "five_percent_owner":
        via = f", {reason['direct_percent']}% own + attributed from {reason['attributed_from']}" \
            if reason.get("attributed_from") else ""
        return f"5% owner in {reason['year']}: {reason['ownership_percent']}%{via}"
    top = ", top-paid group" if reason["top_paid_group"] else ""
    return f"paid {_money(reason['compensation'])} in {reason['year']} > {_money(reason['threshold'])}{top}"
