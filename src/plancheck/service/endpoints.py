"""The service's endpoints and what each request goes through: the bearer token, the body read no further than
its limit, validation, and every error an RFC 9457 problem. The decisions themselves are the CLI's jobs."""

from __future__ import annotations

import hmac
from importlib import resources
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from plancheck.documents.election import ElectionFile
from plancheck.documents.plan import Plan
from plancheck.documents.yamlio import parse_json, validation_problems
from plancheck.errors import InputError, Problem, shown
from plancheck.findings import has_errors
from plancheck.jobs import runner
from plancheck.service import problems
from plancheck.service.guard import PAGE_POLICY
from plancheck.service.holder import Holder
from plancheck.service.state import Snapshot

API_VERSION = "v1"


class Unauthorized(Exception):
    """No bearer token, or not the right one."""


class BodyTooLarge(Exception):
    """The request body is above the size limit."""


class PlanNotFound(Exception):
    """The request names a plan the service does not hold."""

    def __init__(self, plan_id: str):
        super().__init__(plan_id)
        self.plan_id = plan_id


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


def install_errors(app: FastAPI) -> None:
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
