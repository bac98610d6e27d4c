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
import signal
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from plancheck.documents.election import ElectionFile
from plancheck.documents.plan import Plan
from plancheck.documents.withdrawal import WithdrawalRequest
from plancheck.service import problems
from plancheck.service.access import RequestEvents
from plancheck.service.endpoints import API_VERSION, api, health, install_errors, require_token
from plancheck.service.guard import HostCheck
from plancheck.service.holder import (
    DEFAULT_MAX_BODY,
    Holder,
    Settings,
    event_logger,
    handle_sighup,
    watch_files,
    watch_parent,
)
from plancheck.service.state import Snapshot

__all__ = ["API_VERSION", "DEFAULT_MAX_BODY", "Holder", "Settings", "create_app", "event_logger"]


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
        hup = handle_sighup(loop, holder)
        if not holder.reload("start"):
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            raise RuntimeError(f"cannot load rules from {settings.rules_dir} and plans from {settings.plans_dir}")
        _warm_up(holder.snapshot)
        tasks = [asyncio.create_task(watch_files(holder))] if settings.watch_interval else []
        if settings.parent_pid is not None:
            tasks.append(asyncio.create_task(watch_parent(settings.parent_pid, log)))
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
    install_errors(app)
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
