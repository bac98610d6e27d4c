"""The yearend job: HCEs, ADP and ACP with their corrections and deadlines, top-heavy; or a mid-year preview."""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.jobs.result import Common, JobResult


@dataclass
class Yearend:
    """`plancheck yearend`: a census (a path or a URL), optionally a feed for the contribution totals."""

    common: Common
    census: str
    year: int | None = None
    feed: str | None = None
    #: A mid-year preview: the census (or feed) is year to date as of this date; the plan year is its year.
    preview: dt.date | None = None
    output_format: str = "jsonl"
    rejects: Path | None = None


def yearend(params: Yearend) -> JobResult:
    """The year-end tests of a census (`plancheck yearend`). The plan year tested is --year, else the preview date's
    year, else the census's own (its plan_year column, else its latest hire or termination date)."""
    from plancheck.checks.yearend import check_plans, check_yearend, run_summary
    from plancheck.documents.census import read_census, reject_rows
    from plancheck.documents.feed.source import Source
    from plancheck.documents.plan import load_plans
    from plancheck.engine import Engine
    from plancheck.jobs.runner import prepare
    from plancheck.sinks.rejects import write_rejects
    started = time.perf_counter()
    common = params.common
    census_source = Source.of(params.census)
    rejects_path = params.rejects or Path(f"{census_source.stem}.rejects.csv")
    feed_source = Source.of(params.feed) if params.feed is not None else None
    feed_rejects_path = Path(f"{feed_source.stem}.rejects.csv") if feed_source is not None else None
    prepare({"--out": common.out, "--rejects": rejects_path, "feed rejects": feed_rejects_path, "--html": common.html,
             "--xlsx": common.xlsx}, [census_source.location, feed_source and feed_source.location], common.rules_dir,
            common.plans_dir)
    rulebook, limits = common.rules()
    year, as_of = params.year, params.preview
    if year is not None:
        limits.for_year(year, field="--year")
    if as_of is not None:
        year = as_of.year
    loaded = load_plans(common.plans_dir)
    plan_ids = sorted(loaded)
    plan_docs = [loaded[pid][0] for pid in plan_ids]
    check_plans(plan_docs, limits, [str(loaded[pid][1]) for pid in plan_ids])
    data = read_census(census_source, plan_ids, year, preview=as_of is not None, last_year=limits.last_year)
    if year is None:  # the census's own year (documents/census_year.py)
        year = data.year
        limits.for_year(year, source=str(census_source), field="plan year (read from the census; give --year)")
    feed_summary, feed_rejects = None, None
    if feed_source is not None:
        from plancheck.documents.census_feed import contributions_from_feed
        feed_summary, *feed_rejects = contributions_from_feed(feed_source, data)
        feed_summary["rejects_file"] = str(feed_rejects_path)
    engine = Engine(rulebook)
    if as_of is not None:
        from plancheck.checks.preview import preview_yearend
        outcome = preview_yearend(data, plan_docs, limits, rulebook, engine, as_of)
    else:
        outcome = check_yearend(data, plan_docs, limits, rulebook, engine, year)
    seconds = time.perf_counter() - started
    run = run_summary(census_source, data, outcome, as_of, feed_summary, str(rejects_path), seconds)
    corrections = [c.as_event() for c in outcome.corrections]
    previews = getattr(outcome, "previews", [])
    def feed_rejected(stream) -> None:
        if feed_rejects:
            write_rejects(stream, *feed_rejects)

    files: list = [(rejects_path, lambda stream: write_rejects(stream, *reject_rows(data.rejects)))]
    if feed_rejects_path is not None:
        files.append((feed_rejects_path, feed_rejected))

    def document(summary: dict[str, Any]) -> bytes:
        from plancheck.sinks.text_yearend import yearend_text
        return yearend_text(outcome.summaries, outcome.hces, corrections,
                            summary | {"ruleset_revision": rulebook.revision}, previews).encode()

    def after(_summary: dict[str, Any]) -> None:
        if params.output_format == "jsonl":
            sys.stderr.write(f"Year-end {year}: {data.rows_read:,} rows read, {data.rows_rejected:,} rejected; "
                             f"{len(outcome.findings)} finding(s), {len(corrections)} correction(s) "
                             f"in {seconds:.2f} s\n")

    from plancheck.sinks.report_data import yearend_payload
    return JobResult("yearend" if as_of is None else "yearend-preview", rulebook.revision, outcome.findings,
                     [*outcome.findings, *outcome.hces, *corrections, *previews, *outcome.summaries], run,
                     plan_ids=plan_ids, year=as_of.isoformat() if as_of else year, inputs=[census_source, feed_source],
                     document=document if params.output_format == "text" else None, files=files,
                     kept={"yearend": yearend_payload(outcome.summaries, corrections)}, after=after)
