"""The FastAPI application, made by a factory: `uvicorn --factory api.main:create_app`."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from api import account_pages, console, docs, errors, pages
from api.bodylimit import BodyLimit
from api.clients import parse_networks
from api.front import Front
from api.routers import (
    auth,
    campaigns,
    health,
    operators,
    program,
    referral_codes,
    users,
    webhooks,
)
from api.routing import CachedReads, cached_routes
from api.schemas import Problem
from core.container import Core, build_core
from core.infra import db
from core.infra.logs import configure_logging
from core.infra.settings import Settings, get_settings, workers_problem

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# Matched in this order, each router's routes in turn: the public lookups, the busiest, first
# (the prefixes do not overlap, so the order changes nothing else). OpenAPI sorts by tag.
V1_ROUTERS = (
    referral_codes.router,
    users.router,
    auth.router,
    program.router,
    campaigns.router,
    webhooks.router,
    operators.router,
)

# The largest request body is a sign-up of a few hundred bytes: refuse megabytes up front.
MAX_BODY_BYTES = 64 * 1024

DESCRIPTION = """
Invite people with expiring referral codes, sign up with a code, and see who joined.

Sign in with **Authorize** (OAuth2 password flow: your email as `username`). Every error is
`application/problem+json` with a stable `code`.
"""


def create_app(settings: Settings | None = None, *, core: Core | None = None) -> FastAPI:
    """The app for these settings (the environment's when none are given), on its own core
    unless one is handed in. Nothing is built at import."""
    if settings is None:
        settings = get_settings()
        check_workers(settings)
        configure_logging(settings)  # the process's own app: it owns the logging set-up
    core = core or build_core(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await core.start()
        # The embedded default runs its jobs here (one command from a fresh clone); with
        # PostgreSQL, `make worker` replicas do. Chat messages are never sent from here.
        worker = core.worker() if runs_jobs(settings) else None
        if worker is not None:
            worker.start()
        else:
            log.warning(
                "this API process runs no job worker (JOBS_IN_PROCESS=%s on %s): mail, "
                "webhooks and enrichment wait for `make worker` (python -m core.jobs); "
                "/health/ready and /metrics show how long the oldest due job has waited",
                settings.jobs.in_process,
                db.backend_name(settings.database_url),
            )
        core.link_opens.start()  # the landing page's views, written in batches
        # What start-up built lives as long as the process: moved out of the collector's
        # sight, so full collections under load no longer walk it (they set the p99).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*settings.http.gc_thresholds)
        try:
            yield
        finally:
            await core.link_opens.stop()  # what was counted is written before the end
            if worker is not None:
                await worker.stop()
            await core.stop()

    app = ServiceApp(
        # The docs pages are our own (api/docs.py), on files bundled by fastapi-offline.
        docs_url=None,
        redoc_url=None,
        title="Referral service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        # The docs' order (signing in first), whatever order the routers are matched in.
        openapi_tags=[
            {"name": tag}
            for tag in (
                "auth",
                "users",
                "referral codes",
                "program",
                "campaigns",
                "webhooks",
                "operators",
                "health",
            )
        ],
        # FastAPI's native OpenTelemetry looks up the global providers on every request, and
        # this service exports no traces or metrics: off, it costs nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Starlette would build the redirect from the Host header; api.errors answers a
        # trailing slash with a relative one instead.
        redirect_slashes=False,
    )
    app.state.core = core
    app.state.trusted_proxies = parse_networks(settings.http.trusted_proxies)
    errors.install(app)
    docs.install(app)
    pages.install(app)
    account_pages.install(app)
    console.install(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    cached = cached_routes(API_PREFIX, V1_ROUTERS)
    origins = settings.http.cors_origins

    def front(stack: ASGIApp) -> ASGIApp:
        # Outermost, so every answer (a preflight, a cache hit, a 500) passes them.
        layer: ASGIApp = CachedReads(stack, core=core, routes=cached)
        if origins:
            layer = CORSMiddleware(
                layer,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
                expose_headers=["Retry-After", "X-Request-ID", "WWW-Authenticate"],
                max_age=600,
            )
        return Front(layer, request_timeout=settings.http.request_timeout_seconds)

    app.front = front

    # Each router straight under the app: every level of nesting is one more walk through
    # candidate routes on each request.
    for router in V1_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(health.metrics_router)

    _add_problem_schema(app)
    return app


class ServiceApp(FastAPI):
    """FastAPI with the service's front layers (`front`) outside FastAPI's own middleware.

    FastAPI wraps every request in three layers of its own (error page, telemetry, body
    limit) before any user middleware; a cache hit needs none of them, and on the cheapest
    answer they cost about a tenth of the time. `Front` never raises on its own, and
    `CachedReads` hands anything it did not expect to the app inside.
    """

    front: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.front(stack) if self.front is not None else stack


def runs_jobs(settings: Settings) -> bool:
    """Whether this API process runs a job worker of its own (JOBS_IN_PROCESS)."""
    choice = settings.jobs.in_process
    if choice == "auto":
        return settings.database_url.startswith("sqlite")
    return choice == "true"


def check_workers(settings: Settings) -> None:
    """The same check in each worker, for `uvicorn --workers` started by hand."""
    problem = workers_problem(settings, os.environ.get("WEB_CONCURRENCY", "1"))
    if problem:
        raise RuntimeError(problem)


def _add_problem_schema(app: FastAPI) -> None:
    """Register `Problem` in the OpenAPI components the error responses point at."""
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
