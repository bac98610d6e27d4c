"""The command line's option declarations (typer), shared by its commands; no behaviour."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from plancheck.locations import location


class OutputFormat(str, Enum):
    """How `audit` writes its results."""

    jsonl = "jsonl"
    text = "text"
    sarif = "sarif"


class ReportFormat(str, Enum):
    """How `yearend` writes its results."""

    jsonl = "jsonl"
    text = "text"


class SchemaKind(str, Enum):
    """The document kinds `schema` describes."""

    plan = "plan"
    election = "election"
    withdrawal = "withdrawal"
    rule = "rule"
    limit = "limit"


RulesOption = Annotated[Optional[Path], typer.Option(
    "--rules-dir", help="Rules directory (default: $PLANCHECK_HOME/rules, else the bundled rules/)")]
PlansOption = Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")]
OutOption = Annotated[Optional[Path], typer.Option("--out", help="Write JSON-lines events here instead of stdout")]
# A report's destination: a path, or a URL on object storage (locations.py: a str), uploaded whole when written.
HtmlOption = Annotated[Optional[str], typer.Option(
    "--html", parser=location, metavar="PATH|URL",
    help="Write the run's report as one self-contained HTML file, a path or a URL (records the run)")]
XlsxOption = Annotated[Optional[str], typer.Option(
    "--xlsx", parser=location, metavar="PATH|URL",
    help="Write the run's findings as an Excel workbook, a path or a URL (records the run)")]
RecordOption = Annotated[bool, typer.Option(
    "--record", help="Record the run in the history database (--db, else PLANCHECK_DB, else history.sqlite "
    "under the user's data directory)")]

# batch
FeedArgument = Annotated[str, typer.Argument(help="Payroll feed: CSV with a header row, or Parquet; a path, or a URL on "
                                             "object storage (s3://bucket/feed.csv; README, 'Feeds on object storage')")]
UrlOutOption = Annotated[Optional[str], typer.Option(
    "--out", help="Write JSON-lines events here instead of stdout: a path, or a URL on object storage")]
BatchRejectsOption = Annotated[Optional[str], typer.Option(
    "--rejects", help="Where rejected rows go, a path or a URL (default: FEED's name + .rejects.csv in the current "
    "directory)")]
WorkersOption = Annotated[Optional[int], typer.Option("--workers", min=1, help="Worker processes (default: all cores)")]
ClusterOption = Annotated[Optional[str], typer.Option(
    "--cluster", help="Run on a Dask cluster: its scheduler (tcp://scheduler:8786), or local:N for a LocalCluster "
    "of N worker processes (needs the 'dask' extra)")]
WorkDirOption = Annotated[Optional[str], typer.Option(
    "--work-dir", help="With --cluster: where the run's spill and partition files go, a path every worker sees "
    "or an fsspec URL (default: a temporary directory, fine for local:N)")]

# audit
AuditPlansArgument = Annotated[Optional[list[Path]], typer.Argument(help="Plan files or folders (default: plans/)")]
CheckRulesOption = Annotated[bool, typer.Option("--rules", help="Audit the rule files instead of plans")]
AuditFormatOption = Annotated[OutputFormat, typer.Option("--format", help="jsonl, text or sarif")]
AuditYearOption = Annotated[Optional[int], typer.Option(
    "--year", min=1990, max=2100, help="Plan year for documents that do not name one (default: the last year under "
    "rules/limits)")]

# yearend
CensusArgument = Annotated[str, typer.Argument(help="Census: CSV with a header row, or Parquet; one row per employee "
                                               "per plan; a path or a URL")]
YearendYearOption = Annotated[Optional[int], typer.Option(
    "--year", help="Plan year tested (default: the census's own: its plan_year column, else the year of its latest "
    "hire or termination date)")]
YearendFeedOption = Annotated[Optional[str], typer.Option(
    "--feed", help="Take the contribution totals from this payroll feed (CSV or Parquet; a path or a URL) instead "
    "of the census")]
PreviewOption = Annotated[Optional[dt.datetime], typer.Option(
    "--preview", formats=["%Y-%m-%d"], help="Mid-year preview: the census (or feed) is year to date as of this "
    "date (YYYY-MM-DD); give each HCE the most they can still defer and contribute after tax")]
ReportFormatOption = Annotated[ReportFormat, typer.Option("--format", help="jsonl or text")]
CensusRejectsOption = Annotated[Optional[Path], typer.Option(
    "--rejects", help="Where rejected census rows go (default: CENSUS's name + .rejects.csv in the current "
    "directory); rejected feed rows go to FEED's name + .rejects.csv")]

# serve
HostOption = Annotated[str, typer.Option("--host", help="Address to listen on")]
PortOption = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port)")]
TokenFileOption = Annotated[Optional[Path], typer.Option(
    "--token-file", help="File holding the bearer token every endpoint but /healthz and /readyz requires; "
    "without it the service binds to loopback only")]
MaxBodyOption = Annotated[int, typer.Option("--max-body", min=1024, help="Largest request body in bytes (413 above)")]
WatchOption = Annotated[float, typer.Option("--watch", min=0, help="Seconds between looks for changed rule or plan "
                                            "files (0: reload on SIGHUP only)")]
ServeWorkersOption = Annotated[int, typer.Option(
    "--workers", min=1, max=64, help="Worker processes sharing the socket, each with its own engine; SIGHUP reaches "
    "every one (useful up to the number of cores)")]
AllowedHostOption = Annotated[Optional[list[str]], typer.Option(
    "--allowed-host", help="A Host name the service answers for (repeatable; '*' for any); default the "
    "--host address, plus localhost, 127.0.0.1 and ::1 on loopback; other Host headers get 400")]
ReadTimeoutOption = Annotated[float, typer.Option("--read-timeout", min=0.1, help="Seconds a request (headers and "
                                                  "body) has to arrive whole; 408 and closed after")]
MaxConnectionsOption = Annotated[int, typer.Option("--max-connections", min=1, help="Open connections per process "
                                                   "at most; one more closes the oldest idle or slow one")]
ShutdownTimeoutOption = Annotated[float, typer.Option("--shutdown-timeout", min=0, help="Seconds the requests being "
                                                      "answered get to finish after SIGTERM")]

# init
InitDirectoryArgument = Annotated[Path, typer.Argument(help="Where to write rules/ and plans/ (created if missing)")]
SamplesOption = Annotated[bool, typer.Option("--samples", help="Also write samples/: the sample elections, payroll "
                                             "feed, withdrawals and census the README's commands use")]
