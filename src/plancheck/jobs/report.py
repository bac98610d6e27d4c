"""The report job: a recorded run's HTML report and Excel workbook, each replaced (or uploaded) only when whole."""

from __future__ import annotations

from pathlib import Path

from plancheck.errors import InputError, Problem
from plancheck.sinks.files import check_outputs, replacing


def write_reports(store, run_id: int, html: Path | str | None, xlsx: Path | str | None) -> None:
    """The HTML report and the Excel workbook of a recorded run, each replaced (or uploaded, for a URL) only when
    complete."""
    if html is not None:
        from plancheck.sinks.report_html import write_html
        with replacing(html) as stream:
            write_html(store, run_id, stream)
    if xlsx is not None:
        import io

        from plancheck.sinks.report_xlsx import write_xlsx
        buffer = io.BytesIO()
        write_xlsx(store, run_id, buffer)
        with replacing(xlsx) as stream:
            stream.write(buffer.getvalue())


def report(store_of, run_id: int, html: Path | str | None, xlsx: Path | str | None) -> None:
    """`plancheck report`: the reports of run `run_id` of the history `store_of()` opens."""
    if html is None and xlsx is None:
        raise InputError(Problem("report", "", "give --html FILE, --xlsx FILE or both"))
    check_outputs({"--html": html, "--xlsx": xlsx}, [])
    store = store_of()
    store.run(run_id)
    write_reports(store, run_id, html, xlsx)
