"""The morning report: one self-contained HTML file of a recorded run.

Jinja2 renders `templates/report.html.j2` (autoescaped); the charts are Vega-Lite specs drawn by
Vega-Embed, whose scripts (`assets/`) are inlined, so the file needs no network when it is
opened, and can be forwarded by mail. It reads well on a laptop screen and printed (print CSS:
no filters, charts as SVG, rows not split across pages).
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Any

from plancheck.sinks.report_data import RunReport

STATUS_COLORS = {"domain": ["new", "recurring"], "range": ["#d62728", "#7f7f7f"]}


def _asset(name: str) -> str:
    return resources.files("plancheck.sinks").joinpath("assets", name).read_text(encoding="utf-8")


def _bar(values: list[dict[str, Any]], field: str, title: str) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": title, "width": "container", "data": {"values": values},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": field, "type": "nominal", "sort": "-x", "title": None},
            "x": {"aggregate": "sum", "field": "count", "type": "quantitative", "title": "findings"},
            "color": {"field": "status", "type": "nominal", "scale": STATUS_COLORS, "title": "status"},
        },
    }


def _trend(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "title": "Last runs of this scope", "width": "container", "height": 180, "data": {"values": values},
        "mark": {"type": "line", "point": True, "tooltip": True},
        "encoding": {
            "x": {"field": "run", "type": "ordinal", "title": "run", "axis": {"labelAngle": 0}},
            "y": {"field": "count", "type": "quantitative", "title": "findings"},
            "color": {"field": "measure", "type": "nominal", "title": None,
                      "scale": {"domain": ["findings", "new", "resolved"], "range": ["#1f77b4", "#d62728", "#2ca02c"]}},
        },
    }


def render_html(report: RunReport) -> str:
    """The report as one HTML document."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("plancheck.sinks", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    charts = {"by_rule": _bar(report.by_rule, "rule", "Findings by rule"),
              "by_plan": _bar(report.by_plan, "plan", "Findings by plan"),
              "trend": _trend(report.trend)}
    options = lambda key: sorted({str(f[key]) for f in report.findings if f[key] not in (None, "")})  # noqa: E731
    return env.get_template("report.html.j2").render(
        report=report, run=report.run, counts=report.counts, charts=charts,
        rules=options("rule"), plans=options("plan_id"), severities=options("severity"),
        scripts=[_asset("vega.min.js"), _asset("vega-lite.min.js"), _asset("vega-embed.min.js")],
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_html(report: RunReport, stream) -> None:
    stream.write(render_html(report).encode("utf-8"))
