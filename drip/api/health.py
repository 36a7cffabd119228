"""`GET /healthz` (database, Redis and scheduler lag, each reported apart) and `GET /metrics`.

`/healthz` is public, so it says "ok" or "down" and nothing more; the reason goes to the
log. `/metrics` answers only with `Authorization: Bearer <DRIP_METRICS_TOKEN>` and is off
(404) while that setting is unset.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import text

from drip.api.bearer import bearer_token, token_matches
from drip.api.deps import get_runtime
from drip.db import utcnow
from drip.metrics import StateCollector
from drip.reports.funnel import scheduler_lag
from drip.runtime import QUEUES, Runtime

log = structlog.get_logger(__name__)
router = APIRouter()

#: What `/healthz` says of a part that failed; the error itself is logged, never returned.
DOWN = "down"


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
        log.warning("healthz.database_down", error=str(exc).splitlines()[0])
        checks["database"] = DOWN
        checks["scheduler"] = {"status": "unknown"}
    try:
        runtime.broker.client.ping()  # type: ignore[attr-defined]
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("healthz.redis_down", error=str(exc))
        checks["redis"] = DOWN
    healthy = checks["database"] == "ok" and checks["redis"] == "ok"
    status = "ok" if healthy and checks["scheduler"]["status"] == "ok" else "degraded"
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if healthy else 503)


def build_state_registry(runtime: Runtime) -> CollectorRegistry:
    """A registry of the shared-state gauges for one app; its collector caches its reads."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        StateCollector(sessions=runtime.sessions, broker=runtime.broker, queues=QUEUES)
    )
    return registry


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        401: {"description": "The metrics token is missing or wrong"},
        404: {"description": "Metrics are off: DRIP_METRICS_TOKEN is not set"},
    },
)
def metrics(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    """Prometheus text format: this process's counters, then the shared state gauges."""
    expected = runtime.settings.metrics_token
    if not expected:
        return JSONResponse({"detail": "metrics are off: set DRIP_METRICS_TOKEN"}, status_code=404)
    if not token_matches(bearer_token(request), expected):
        return JSONResponse(
            {"detail": "a valid metrics token is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(
        generate_latest(REGISTRY) + generate_latest(request.app.state.metrics_state),
        media_type=CONTENT_TYPE_LATEST,
    )
