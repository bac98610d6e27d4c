"""RFC 9457 problem details: every error the service answers is one `application/problem+json` object.

The 422 body lists each problem as the CLI states it (documents/yamlio.validation_problems):
the field, what was expected, and a short echo of what was sent, never the whole value.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from plancheck.errors import Problem, shorten

MEDIA_TYPE = "application/problem+json"
#: Problem types are relative URIs documented in README "Service"; `about:blank` means the status says it all.
TYPE_BASE = "/problems/"


def problem(status: int, title: str, detail: str | None = None, kind: str | None = None,
            **extensions: Any) -> JSONResponse:
    """A problem details response: `type`, `title`, `status`, `detail` and any extension members."""
    body: dict[str, Any] = {"type": f"{TYPE_BASE}{kind}" if kind else "about:blank", "title": title,
                            "status": status}
    if detail is not None:
        body["detail"] = shorten(detail, 1000)
    body.update(extensions)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def error_member(p: Problem) -> dict[str, Any]:
    """One invalid field of a request, as the `errors` extension member lists it."""
    member: dict[str, Any] = {"field": p.field, "expected": p.expected}
    if p.got is not None:
        member["got"] = shorten(p.got)
    return member


def invalid(problems: list[Problem], detail: str | None = None) -> JSONResponse:
    """422: the request was well-formed JSON but its content breaks the schema or cannot be checked."""
    text = detail or "; ".join(f"{p.field}: {p.expected}" if p.field else p.expected for p in problems[:5])
    return problem(422, "Invalid request", text, "invalid-request", errors=[error_member(p) for p in problems])


#: OpenAPI description of a problem details body, shared by every error response.
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "expected": {"type": "string"}, "got": {"type": "string"}}}},
    },
    "required": ["type", "title", "status"],
}
