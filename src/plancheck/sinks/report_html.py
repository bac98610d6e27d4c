"""The morning report: one self-contained HTML file of a recorded run.

Jinja2 renders `templates/report.html.j2` (autoescaped); the charts are Vega-Lite specs drawn by
Vega-Embed, whose scripts (`assets/`) are inlined, so the file needs no network when it is
opened, and can be forwarded by mail. It reads well on a laptop screen and printed (print CSS:
no filters, charts as SVG, rows not split across pages).

**The table holds every finding** (and every finding the run resolved): they are embedded once,
as compact JSON (`FindingsTable`: one array per finding, repeated texts such as rules, plans and
citations written once and referred to by number), and the page's script renders the page of
the table asked for, with the filters and the search working over all of them. Up to
`FindingsTable.COMPRESS_ABOVE` bytes the JSON is embedded as it is; above, gzip-compressed and
base64-encoded (unpacked by the browser's own `DecompressionStream`, still with no network):
100,000 findings are about 44 MB as JSON, about 12 MB so.
"""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from importlib import resources
from typing import Any

import orjson

from plancheck.money import display_cents, display_dollars
from plancheck.sinks.report_data import RunReport, run_report

#: Rows of the table on one page, when the report is opened.
PAGE_SIZE = 100

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


class FindingsTable:
    """Every row of the report's table, encoded as the page's script reads it (see the module docstring).

    `{"columns": [...], "rows": [[...], ...], "texts": [...], "ytd": [...]}`: each row has the
    values of `COLUMNS` in order; `TEXTS` columns hold a number into `texts`; `ytd` is the list of
    year-to-date values in the order of the top-level `ytd` names (0 when the finding has none);
    `test` is an object or 0; `acknowledged` 1 or 0; `fingerprint` its first `FINGERPRINT_CHARS`
    characters; money stays the exact decimal text of the event.
    """

    COLUMNS = ("status", "first_seen", "acknowledged", "severity", "rule", "plan", "employee", "year", "date",
               "amount", "limit", "excess", "citation", "title", "message", "ytd", "test", "fingerprint",
               "last_seen")
    TEXTS = frozenset({"status", "severity", "rule", "plan", "citation", "title"})
    #: Above this many bytes of JSON, the table is embedded compressed.
    COMPRESS_ABOVE = 1 << 20
    #: Characters of each fingerprint kept: 64 bits, unique in any history and enough for `plancheck ack`
    #: (which takes 8 or more), where the whole 64 would make a 100,000-finding file a quarter larger.
    FINGERPRINT_CHARS = 16

    def __init__(self) -> None:
        self.rows = 0
        self._texts: dict[str, int] = {}
        self._ytd: dict[str, int] = {}
        self._parts: list[bytes] = [b'{"columns":' + orjson.dumps(self.COLUMNS) + b',"rows":[']
        self._size = len(self._parts[0])
        self._gzip = None

    def _text(self, value: Any) -> int:
        value = "" if value is None else str(value)
        code = self._texts.get(value)
        if code is None:
            code = self._texts[value] = len(self._texts)
        return code

    def add(self, row: dict[str, Any]) -> None:
        """One row (a dict of `report_data._row`)."""
        text, ytd_names = self._text, self._ytd
        ytd = 0
        if row["ytd"]:
            for name in row["ytd"]:
                if name not in ytd_names:
                    ytd_names[name] = len(ytd_names)
            ytd = [None] * len(ytd_names)
            for name, value in row["ytd"].items():
                ytd[ytd_names[name]] = value
        values = [text(row["status"]), row["first_seen"], 1 if row["acknowledged"] else 0, text(row["severity"]),
                  text(row["rule"]), text(row["plan_id"]), row["employee_id"], row["year"], row["pay_date"],
                  row["amount"], row["limit"], row["excess"], text(row["citation"]), text(row["title"]),
                  row["message"], ytd, row["test"] or 0, row["fingerprint"][:self.FINGERPRINT_CHARS],
                  row["last_seen"] or 0]
        self._write((b"," if self.rows else b"") + orjson.dumps(values))
        self.rows += 1

    def _write(self, data: bytes) -> None:
        if self._gzip is not None:
            self._parts.append(self._gzip.compress(data))
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size > self.COMPRESS_ABOVE:
            self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip format DecompressionStream reads
            self._parts = [self._gzip.compress(b"".join(self._parts))]

    def payload(self) -> tuple[str, str]:
        """(encoding, text to embed in a <script type="application/json">): "json" or "gzip+base64"."""
        self._write(b'],"texts":' + orjson.dumps(list(self._texts)) + b',"ytd":' + orjson.dumps(list(self._ytd))
                    + b"}")
        if self._gzip is None:
            # "<" written as its JSON escape, so no text in the data can close the script element.
            return "json", b"".join(self._parts).replace(b"<", b"\\u003c").decode()
        self._parts.append(self._gzip.flush())
        return "gzip+base64", base64.b64encode(b"".join(self._parts)).decode("ascii")


def render_html(report: RunReport, table: FindingsTable) -> str:
    """The report as one HTML document."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("plancheck.sinks", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["dollars"] = display_cents
    env.filters["usd"] = lambda text: "" if text in (None, "") else display_dollars(text)
    charts = {"by_rule": _bar(report.by_rule, "rule", "Findings by rule"),
              "by_plan": _bar(report.by_plan, "plan", "Findings by plan"),
              "trend": _trend(report.trend)}
    encoding, payload = table.payload()
    return env.get_template("report.html.j2").render(
        report=report, run=report.run, counts=report.counts, charts=charts,
        rules=sorted({r["rule"] for r in report.by_rule}), plans=sorted({p["plan"] for p in report.by_plan}),
        severities=sorted({r["severity"] for r in report.by_rule}),
        table_encoding=encoding, table_payload=payload, table_rows=table.rows, page_size=PAGE_SIZE,
        scripts=[_asset("vega.min.js"), _asset("vega-lite.min.js"), _asset("vega-embed.min.js")],
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_html(store, run_id: int, stream) -> None:
    """The report of run `run_id`, read from the history in one pass, written to a binary stream."""
    table = FindingsTable()
    report = run_report(store, run_id, each_row=table.add)
    stream.write(render_html(report, table).encode("utf-8"))
