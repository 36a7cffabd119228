"""`GET /healthz` (database, Redis and scheduler lag, each reported apart) and `GET /metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import text

from drip.api.deps import get_runtime
from drip.db import utcnow
from drip.metrics import StateCollector
from drip.reports.funnel import scheduler_lag
from drip.runtime import Runtime

router = APIRouter()


def lag_limit(runtime: Runtime) -> float:
    """Lag beyond which the scheduler counts as behind: ten ticks, and at least a minute."""
    return max(60.0, 10 * runtime.settings.scheduler_interval)


@router.get("/healthz", responses={503: {"description": "The database or Redis is down"}})
def healthz(runtime: Runtime = Depends(get_runtime)) -> JSONResponse:
    """503 when the database or Redis is down; a lagging scheduler is reported, not fatal here."""
    checks: dict[str, Any] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
        with runtime.sessions() as session:
            lag = scheduler_lag(session, now=utcnow())
        checks["scheduler"] = {
            "status": "ok" if lag.seconds <= lag_limit(runtime) else "lagging",
            **lag.as_dict(),
        }
    except Exception as exc:
        checks["database"] = f"error: {str(exc).splitlines()[0]}"
        checks["scheduler"] = {"status": "unknown"}
    try:
        runtime.broker.client.ping()  # type: ignore[attr-defined]
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    healthy = checks["database"] == "ok" and checks["redis"] == "ok"
    status = "ok" if healthy and checks["scheduler"]["status"] == "ok" else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if healthy else 503)


@router.get("/metrics", response_class=Response)
def metrics(runtime: Runtime = Depends(get_runtime)) -> Response:
    """Prometheus text format: this process's counters, then the shared state gauges."""
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector(runtime))
    return Response(
        generate_latest(REGISTRY) + generate_latest(state), media_type=CONTENT_TYPE_LATEST
    )
