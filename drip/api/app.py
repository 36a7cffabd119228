"""The FastAPI application: built from a `Runtime`, so tests and processes share one wiring."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from drip.api import (
    admin,
    clicks,
    confirm,
    downloads,
    health,
    signups,
    unsubscribe,
    v1,
    webhooks,
)
from drip.api.headers import SecurityHeaders
from drip.errors import UnknownSequence
from drip.runtime import Runtime

log = structlog.get_logger(__name__)


def create_app(runtime: Runtime) -> FastAPI:
    """The API for `runtime`'s database, broker and sequences."""
    # The interactive docs and the schema describe every endpoint to anyone: development only.
    production = runtime.settings.is_production
    app = FastAPI(
        title="drip",
        version="0.1.0",
        docs_url=None if production else "/docs",
        redoc_url=None,
        openapi_url=None if production else "/openapi.json",
    )
    app.add_middleware(
        SecurityHeaders,
        framing_only=() if production else ("/docs", "/docs/oauth2-redirect"),
    )
    app.state.runtime = runtime
    app.state.metrics_state = health.build_state_registry(runtime)
    app.include_router(signups.router)
    app.include_router(unsubscribe.router)
    app.include_router(health.router)
    app.include_router(downloads.router)
    app.include_router(clicks.router)
    app.include_router(confirm.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    app.include_router(v1.router)

    @app.exception_handler(UnknownSequence)
    async def _unknown_sequence(_: Request, exc: UnknownSequence) -> JSONResponse:
        return JSONResponse(
            {
                "detail": [
                    {"loc": ["body", "sequence"], "msg": str(exc), "type": "unknown_sequence"}
                ]
            },
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("api.database_unavailable", error=str(exc).splitlines()[0])
        return JSONResponse(
            {"detail": "the database is unavailable; nothing was changed, try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    return app
