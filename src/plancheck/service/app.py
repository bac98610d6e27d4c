"""The election-validation service: the CLI's checks over HTTP (FastAPI on uvicorn).

`create_app(settings)` builds the app. Its lifespan loads rules, limits and plans once and
builds one engine per worker process (a `Snapshot`); SIGHUP or a change under the rules or
plans directory builds a new snapshot and swaps it in, and a broken file keeps the old one.

Every check runs on the event loop thread, one at a time per worker: the engine is never used
from two threads, and a decision takes about a millisecond (see benchmarks/bench_service.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import signal
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from plancheck.documents.election import ElectionFile
from plancheck.documents.plan import Plan
from plancheck.documents.withdrawal import WithdrawalRequest
from plancheck.documents.yamlio import parse_json, validation_problems
from plancheck.errors import InputError, Problem, shown
from plancheck.findings import has_errors
from plancheck.jobs import runner
from plancheck.service import problems
from plancheck.service.access import RequestEvents
from plancheck.service.guard import LOOPBACK_HOSTS, PAGE_POLICY, HostCheck
from plancheck.service.state import Snapshot, fingerprint, load_snapshot

API_VERSION = "v1"
#: Request bodies larger than this (bytes) answer 413 unless the settings say otherwise.
DEFAULT_MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class Settings:
    """How one service instance runs."""

    rules_dir: Path
    plans_dir: Path
    #: The bearer token every endpoint but health requires; None leaves the API open (loopback only).
    token: bytes | None = None
    max_body: int = DEFAULT_MAX_BODY
    #: Seconds between looks for changed rule or plan files; None or 0 turns the watcher off.
    watch_interval: float | None = 2.0
    #: Where the structured events go (JSON lines); default stderr.
    log_stream: TextIO | None = None
    #: A worker of `serve --workers N`: the supervisor's pid. The worker stops if that process goes away.
    parent_pid: int | None = None
    #: The file the token was read from: SIGHUP reads it again (token rotation).
    token_file: Path | None = None
    #: The Host names answered (service/guard.py); None answers any.
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS
    #: Seconds a request has to arrive whole (service/protocol.py).
    read_timeout: float = 10.0
    #: Open connections at most (service/protocol.py).
    max_connections: int = 512
    #: Seconds the requests being answered get to finish after SIGTERM or SIGINT, before they are cancelled.
    shutdown_timeout: float = 10.0


class Unauthorized(Exception):
    """No bearer token, or not the right one."""


class BodyTooLarge(Exception):
    """The request body is above the size limit."""


class PlanNotFound(Exception):
    """The request names a plan the service does not hold."""

    def __init__(self, plan_id: str):
        super().__init__(plan_id)
        self.plan_id = plan_id


class Holder:
    """The current snapshot; replaced whole by `reload`, read once per request."""

    def __init__(self, settings: Settings, log: Any):
        self.settings = settings
        self.log = log
        self.snapshot: Snapshot | None = None
        #: The bearer token requests must present (replaced by reload_token).
        self.token = settings.token

    def reload_token(self, why: str) -> bool:
        """Read the token file again; a file that cannot be read or holds no valid token keeps the old token."""
        if self.settings.token_file is None:
            return False
        from plancheck.service.run import read_token
        try:
            token = read_token(self.settings.token_file)
        except InputError as exc:
            self.log.warning("token_reload_failed", trigger=why, problems=[str(p) for p in exc.problems],
                             pid=os.getpid())
            return False
        changed, self.token = token != self.token, token
        self.log.info("token_loaded", trigger=why, changed=changed, pid=os.getpid())
        return True

    def on_sighup(self) -> None:
        """SIGHUP: the token first (a rotation takes effect at once), then rules and plans."""
        self.reload_token("SIGHUP")
        self.reload("SIGHUP")

    def reload(self, why: str) -> bool:
        """Build a new snapshot and swap it in; on any problem keep the old one and log why."""
        started = time.perf_counter()
        try:
            fresh = load_snapshot(self.settings.rules_dir, self.settings.plans_dir)
        except InputError as exc:
            self.log.warning("reload_failed", trigger=why, kept_revision=self.snapshot.revision if self.snapshot else None,
                             problems=[str(p) for p in exc.problems[:20]], pid=os.getpid())
            return False
        except Exception as exc:  # noqa: BLE001 - a reload must never take the worker down
            self.log.error("reload_failed", trigger=why, kept_revision=self.snapshot.revision if self.snapshot else None,
                           problems=[f"{type(exc).__name__}: {shown(str(exc), 200)}"], pid=os.getpid())
            return False
        old, self.snapshot = self.snapshot, fresh
        if old is not None:
            old.engine.close()  # safe: checks run on this thread, so none is using it now
        self.log.info("rules_loaded", trigger=why, ruleset_revision=fresh.revision,
                      plans_revision=fresh.plans_revision, plans=len(fresh.plans),
                      seconds=round(time.perf_counter() - started, 3), pid=os.getpid())
        return True


def event_logger(stream: TextIO | None) -> Any:
    """A structlog logger writing one JSON object per line, `event` first, with a UTC timestamp.

    Each event is one write of one line, so the lines of several worker processes sharing stderr
    never interleave.
    """
    def event_first(_logger: Any, _method: str, event_dict: dict) -> dict:
        return {"event": event_dict.pop("event"), **event_dict}

    return structlog.wrap_logger(
        structlog.WriteLogger(stream or sys.stderr),
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    event_first, structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())],
    )


# -- request helpers -----------------------------------------------------------------------------------------------

def _holder(request: Request) -> Holder:
    return request.app.state.holder


def current(request: Request) -> Snapshot:
    """The snapshot this request works with (taken once, so a reload mid-request changes nothing)."""
    snapshot = _holder(request).snapshot
    if snapshot is None:
        raise StarletteHTTPException(503, "the rules are not loaded yet")
    request.state.revision = snapshot.revision
    return snapshot


#: The bearer scheme as OpenAPI describes it (components.securitySchemes and each endpoint's `security`), so a client
#: generated from /openapi.json sends the token. The check itself is `require_token`'s: constant time, and only when
#: the service has a token (without one, loopback only, the scheme is declared but nothing is asked).
BEARER = HTTPBearer(auto_error=False, scheme_name="bearerToken",
                    description="The token of the service's --token-file, as `Authorization: Bearer <token>`.")


async def require_token(request: Request, _credentials: Any = Security(BEARER)) -> None:
    """With a token configured, `Authorization: Bearer <token>`, compared in constant time."""
    token = _holder(request).token
    if token is None:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token):
        raise Unauthorized()


async def json_body(request: Request) -> Any:
    """The request body parsed as the CLI parses a JSON document, read no further than the size limit."""
    limit = _holder(request).settings.max_body
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(Problem("request body", "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})")) from None
    if not text.strip():
        raise InputError(Problem("request body", "", "expected a JSON document, got an empty body"))
    return parse_json(text, "request body")


def _validate(model: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise InputError(Problem("request body", "", "expected a JSON object"))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, data, "request body") from None


def _decided(request: Request, findings: list) -> None:
    """Note what the decision found, for the request's log event."""
    request.state.rules = sorted({f.rule for f in findings})


def _answer(content: dict[str, Any]) -> Response:
    """A decision as JSON, serialized once by orjson (FastAPI passes a Response through untouched)."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _body_schema(name: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}}


_ERRORS = {status: {"description": text, "content": {problems.MEDIA_TYPE: {
    "schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, text in ((401, "Missing or wrong bearer token"), (404, "Unknown plan"),
                         (413, "Request body too large"), (422, "Invalid request: each field and what was expected"))}


# -- endpoints -----------------------------------------------------------------------------------------------------

api = APIRouter(prefix=f"/{API_VERSION}", dependencies=[Depends(require_token)], responses=_ERRORS)
health = APIRouter()


@health.get("/healthz", tags=["health"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", tags=["health"], summary="Rules and plans are loaded")
async def readyz(request: Request) -> JSONResponse:
    snapshot = _holder(request).snapshot
    if snapshot is None:
        return problems.problem(503, "Not ready", "the rules are not loaded yet")
    return JSONResponse({"status": "ready", "ruleset_revision": snapshot.revision, "plans": len(snapshot.plans)})


@api.get("/revision", tags=["rules"], summary="The ruleset revision in use")
async def revision(request: Request) -> dict[str, Any]:
    snapshot = current(request)
    return {"ruleset_revision": snapshot.revision, "plans_revision": snapshot.plans_revision,
            "loaded_at": snapshot.loaded_at}


@api.get("/plans", tags=["plans"], summary="The plans the service checks against")
async def list_plans(request: Request) -> dict[str, Any]:
    snapshot = current(request)
    return {"plans": [_plan_summary(snapshot.plans[pid]) for pid in sorted(snapshot.plans)]}


@api.get("/plans/{plan_id}", tags=["plans"], summary="One plan document")
async def get_plan(plan_id: str, request: Request) -> dict[str, Any]:
    snapshot = current(request)
    plan = _plan(snapshot, plan_id)
    # The document as written (percentages in percent, money in dollars): it can be posted back to /v1/plans/audit.
    return {**_plan_summary(plan), "document": snapshot.plan_documents[plan_id]}


def _plan_summary(plan: Plan) -> dict[str, Any]:
    accepted = [s for s in ("pretax", "roth", "after_tax") if getattr(plan.contributions, s)]
    return {"plan_id": plan.plan_id, "name": plan.name, "employer": plan.employer_id, "plan_year": plan.plan_year,
            "payroll": plan.payroll.frequency.value, "contributions": accepted}


def _plan(snapshot: Snapshot, plan_id: str) -> Plan:
    plan = snapshot.plans.get(plan_id)
    if plan is None:
        raise PlanNotFound(plan_id)
    return plan


@api.get("/rules", tags=["rules"], summary="Every rule with its citation")
async def list_rules(request: Request) -> dict[str, Any]:
    snapshot = current(request)
    rules = [{"id": r.id, "subject": r.subject, "severity": r.severity, "title": r.title, "citation": r.citation}
             for subject in sorted(snapshot.rulebook.rules) for r in snapshot.rulebook.rules[subject]]
    return {"ruleset_revision": snapshot.revision, "rules": rules}


@api.post("/elections/check", tags=["elections"], summary="Check one employee's election for the rest of the year",
          openapi_extra=_body_schema("ElectionFile"))
async def check_election_endpoint(request: Request, body: Any = Depends(json_body)) -> dict[str, Any]:
    """Findings, the year-end projection and the after-tax room; with error findings, the nearest
    compliant election. The plan is the body's `plan_id` (or the `plan_id` query parameter)."""
    from plancheck.jobs.election import decide
    snapshot = current(request)
    election = _validate(ElectionFile, body)
    plan_id = election.plan_id or request.query_params.get("plan_id")
    if not plan_id:
        raise InputError(Problem("request body", "plan_id", "required key is missing (the plan to check against)"))
    plan = _plan(snapshot, plan_id)
    result = decide(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine, "request body")
    _decided(request, result.findings)
    answer = runner.answer(result) | {"nearest_compliant": None}
    if has_errors(result.findings):
        answer["nearest_compliant"] = _nearest(election, plan, snapshot)
    return _answer(answer)


def _nearest(election: ElectionFile, plan: Plan, snapshot: Snapshot) -> dict[str, Any]:
    from plancheck.checks.nearest import nearest_compliant
    return nearest_compliant(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine)


@api.post("/withdrawals/check", tags=["withdrawals"], summary="Check withdrawal and conversion requests",
          openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
              "oneOf": [{"type": "array", "items": {"$ref": "#/components/schemas/WithdrawalRequest"}},
                        {"type": "object", "properties": {"requests": {"type": "array", "items": {
                            "$ref": "#/components/schemas/WithdrawalRequest"}}}, "required": ["requests"]}]}}}}})
async def check_withdrawals_endpoint(request: Request, body: Any = Depends(json_body)) -> dict[str, Any]:
    """A list of requests (or `{"requests": [...]}`): each either checked or rejected with its reason."""
    from plancheck.jobs.withdrawals import posted, rejections
    snapshot = current(request)
    items = body.get("requests") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InputError(Problem("request body", "requests", "expected a list of requests (or an object with requests)"))
    result = posted(items, dict(snapshot.plans), snapshot.rulebook, snapshot.engine, snapshot.limits)
    _decided(request, result.findings)
    return _answer(runner.answer(result, rejected=rejections(result)))


@api.post("/plans/audit", tags=["plans"], summary="Audit a posted plan document",
          openapi_extra=_body_schema("Plan"))
async def audit_plan_endpoint(request: Request, body: Any = Depends(json_body)) -> dict[str, Any]:
    """Configuration findings and the mega-backdoor verdict of one plan document (JSON)."""
    from plancheck.jobs.audit import posted
    snapshot = current(request)
    result = posted(body, snapshot.limits, snapshot.rulebook, snapshot.engine)
    _decided(request, result.findings)
    return _answer(runner.answer(result))


@health.get("/", include_in_schema=False)
async def page() -> HTMLResponse:
    """The administrators' page: one self-contained HTML file, no asset from the network."""
    html = resources.files("plancheck.service").joinpath("page/index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_POLICY})


# -- the app ---------------------------------------------------------------------------------------------------------

def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request models' JSON Schemas (the same models the CLI validates with)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ElectionFile, WithdrawalRequest, Plan):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["Problem"] = problems.PROBLEM_SCHEMA
    app.openapi_schema = document
    return document


def create_app(settings: Settings) -> FastAPI:
    """The service app; rules and plans load in its lifespan (per worker process)."""
    log = event_logger(settings.log_stream)
    holder = Holder(settings, log)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loop = asyncio.get_running_loop()
        # The handler before the first load: a SIGHUP from now on reloads after it (the callback waits for
        # the loop), none falls between the load and the handler.
        hup = _handle_sighup(loop, holder)
        if not holder.reload("start"):
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            raise RuntimeError(f"cannot load rules from {settings.rules_dir} and plans from {settings.plans_dir}")
        _warm_up(holder.snapshot)
        tasks = [asyncio.create_task(_watch(holder))] if settings.watch_interval else []
        if settings.parent_pid is not None:
            tasks.append(asyncio.create_task(_watch_parent(settings.parent_pid, log)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # shutting down: a late SIGHUP must not kill it

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN. The document itself is below.
    app = FastAPI(title="plancheck", version="1", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
                  description="401(k) compliance checks over HTTP: elections, withdrawal requests and plan "
                              "documents, with the rules, limits and plans of the service's rules directory.")
    app.state.holder = holder
    app.include_router(health)
    app.include_router(api)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())
    _install_errors(app)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # inside RequestEvents: a refusal is logged too
    app.add_middleware(RequestEvents, holder=holder)
    return app


def _warm_up(snapshot: Snapshot | None) -> None:
    """Decide one election that breaks a rule, with its nearest compliant one, before taking requests: the first
    request would otherwise pay for the checks' imports and first use (about 50 ms instead of a few)."""
    from plancheck.checks.nearest import nearest_compliant
    from plancheck.jobs.election import decide
    if snapshot is None:
        return
    for plan in list(snapshot.plans.values())[:1]:
        try:
            election = ElectionFile.model_validate({
                "employee": {"id": "warm-up", "birth_date": f"{snapshot.limits.last_year - 56}-03-01",
                             "compensation": {"annual": 240000}, "prior_year_fica_wages": 200000},
                "election": {"start_date": f"{snapshot.limits.last_year}-01-01", "pretax": {"percent": 50}}})
            decide(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine, "warm-up")
            nearest_compliant(election, plan, snapshot.limits, snapshot.rulebook, snapshot.engine)
        except Exception:  # noqa: BLE001 - a warm-up is an optimisation; the service starts regardless
            pass


def _handle_sighup(loop: asyncio.AbstractEventLoop, holder: Holder) -> bool:
    """Reload on SIGHUP, then let SIGHUP through: until this handler is in place `serve` ignores SIGHUP and
    a worker starts with it blocked (process.sighup_ignored, process.sighup_blocked), so one sent while the worker
    started is delivered now rather than ending it."""
    if not hasattr(signal, "SIGHUP"):
        return False
    try:
        loop.add_signal_handler(signal.SIGHUP, holder.on_sighup)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (the tests' in-thread server)
        return False
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    return True


async def _watch_parent(parent_pid: int, log: Any) -> None:
    """A worker whose supervisor has gone (killed with SIGKILL) stops, rather than serve on unsupervised."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent_pid:
            log.warning("supervisor_gone", parent_pid=parent_pid, pid=os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful shutdown
            return


async def _watch(holder: Holder) -> None:
    """Reload when a file under the rules or plans directory changes (mtime, size, added or removed)."""
    settings = holder.settings
    seen = holder.snapshot.fingerprint if holder.snapshot else None
    while True:
        await asyncio.sleep(settings.watch_interval)
        now = fingerprint(settings.rules_dir, settings.plans_dir)
        if now != seen:
            seen = now
            if holder.snapshot is None or now != holder.snapshot.fingerprint:
                holder.reload("file change")


def _install_errors(app: FastAPI) -> None:
    """Every error is an RFC 9457 problem; nothing a client sends reaches the worker as an exception."""

    @app.exception_handler(InputError)
    async def _input(_request: Request, exc: InputError) -> JSONResponse:
        return problems.invalid(exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        found = [Problem("request", ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        return problems.invalid(found)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_request: Request, _exc: Unauthorized) -> JSONResponse:
        return problems.problem(401, "Unauthorized", "send Authorization: Bearer <token>", "unauthorized")

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, _exc: BodyTooLarge) -> JSONResponse:
        limit = _holder(request).settings.max_body
        return problems.problem(413, "Request body too large", f"the limit is {limit:,} bytes", "body-too-large",
                                max_bytes=limit)

    @app.exception_handler(PlanNotFound)
    async def _no_plan(_request: Request, exc: PlanNotFound) -> JSONResponse:
        return problems.problem(404, "Unknown plan", f"no plan {shown(exc.plan_id)} is loaded; GET /v1/plans lists "
                                "them", "unknown-plan", errors=[{"field": "plan_id", "expected": "a loaded plan"}])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 503: "Not ready"}
        return problems.problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))
