"""The FastAPI application: routers, and one error shape {"code", "message"} for every 4xx/5xx."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from adapters.http import (
    admin,
    calibrations,
    chips,
    executions,
    figures,
    metrics,
    projects,
    provenance,
    seeds,
    task_files,
    task_results,
    tasks,
    twin_core,
    twin_fpga,
    twin_jobs,
    twin_qec,
    twin_telemetry,
)
from adapters.http import auth as auth_routes
from adapters.http.errors import status_of
from adapters.http.limits import BodyLimits
from domain.errors import DomainError, Kind
from domain.figures import MAX_FIGURE_BYTES
from domain.metrics import MetricCatalog, PolicyRule
from projections.base import QueryError
from projections.lineage import ProvenanceGraph

log = logging.getLogger(__name__)


def create_app(
    *,
    gateway: Any,
    read: Any,
    runner: Any,
    health: Any,
    read_wait_seconds: float,
    auth: Any,
    catalog: MetricCatalog,
    policy: tuple[PolicyRule, ...],
    timezone: str = "UTC",
    figure_store: Any = None,
    twin: Any = None,
    twin_watch: Any = None,
    twin_config_read_only: bool = False,
    max_body_bytes: int = 1024 * 1024,
) -> FastAPI:
    app = FastAPI(
        # Swagger UI from the swagger-ui-bundle package, not a CDN: a lab network without
        # internet gets a working page (docs route below). ReDoc needs a CDN: off.
        docs_url=None,
        redoc_url=None,
        title="qledger",
        description="System of record for a superconducting-QPU lab: calibration results,"
        " parameter versions with lineage, controller commands and the digital twin.",
        version="0.1.0",
    )
    app.state.gateway = gateway
    app.state.read = read
    app.state.runner = runner
    app.state.read_wait_seconds = read_wait_seconds
    app.state.auth = auth
    app.state.catalog = catalog
    app.state.policy = policy
    app.state.timezone = timezone
    app.state.graph = ProvenanceGraph()
    app.state.figures = figure_store
    app.state.twin = twin  # adapters.twin.view.TwinView
    app.state.twin_watch = twin_watch  # adapters.twin.watch.JobWatch
    app.state.twin_config_read_only = twin_config_read_only
    app.add_middleware(
        BodyLimits,
        max_bytes=max_body_bytes,
        per_path={"/api/figures": MAX_FIGURE_BYTES + 64 * 1024},
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            body = exc.detail
        else:
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
            body = {"code": code, "message": str(exc.detail)}
        return JSONResponse(
            body, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(QueryError)
    @app.exception_handler(DomainError)
    async def refused(_: Request, exc: QueryError | DomainError) -> JSONResponse:
        return JSONResponse(
            {"code": exc.code, "message": exc.message}, status_code=status_of(exc.kind)
        )

    @app.exception_handler(ValidationError)  # a command built from path parameters
    @app.exception_handler(RequestValidationError)
    async def invalid_request(
        _: Request, exc: RequestValidationError | ValidationError
    ) -> JSONResponse:
        errors = exc.errors()
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10]
        )
        detail = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors[:50]]
        return JSONResponse(
            {"code": "invalid_request", "message": summary, "detail": detail},
            status_code=status_of(Kind.INVALID),
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error: %s", exc)
        return JSONResponse(
            {"code": "internal_error", "message": "unexpected server error; see the server log"},
            status_code=status_of(Kind.INTERNAL),
        )

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="qledger API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/api/health", tags=["system"])
    async def get_health() -> dict[str, Any]:
        return await health()

    for router in (
        auth_routes.router,
        auth_routes.gateway,
        admin.router,
        projects.router,
        projects.keys,
    ):
        app.include_router(router)
    app.include_router(chips.router)
    app.include_router(figures.router)  # before /api/executions/{execution_id}
    app.include_router(executions.router)
    app.include_router(calibrations.router)
    app.include_router(seeds.router)  # /api/calibrations/seed-*, /api/calibrations/note
    app.include_router(provenance.router)
    app.include_router(metrics.router)
    app.include_router(metrics.chip_views)
    app.include_router(task_results.router)
    app.include_router(task_results.tags)
    app.include_router(tasks.router)
    app.include_router(task_files.router)  # /api/task-files/...
    from adapters.http.asyncapi import router as asyncapi_document

    app.include_router(asyncapi_document)  # GET /api/asyncapi.json, open
    for twin_router in (
        twin_core.router,
        twin_core.config,
        twin_jobs.router,
        twin_jobs.controller,
        twin_telemetry.router,
        twin_qec.router,
        twin_fpga.router,
    ):
        app.include_router(twin_router)
    return app
