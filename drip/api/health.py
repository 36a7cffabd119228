"""`GET /healthz`: the database and Redis, each reported apart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from drip.api.deps import get_runtime
from drip.runtime import Runtime

router = APIRouter()


@router.get("/healthz")
def healthz(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {str(exc).splitlines()[0]}"
    try:
        runtime.broker.client.ping()  # type: ignore[attr-defined]
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
    )
