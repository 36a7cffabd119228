"""Prometheus metrics.

Counters and the latency histogram live in the process that does the work (the API for
signups and webhooks, the worker for sends; `drip worker` exposes them with Dramatiq's
Prometheus middleware). Gauges that describe shared state (scheduler lag, pending rows,
queue depth) are read from PostgreSQL and Redis at scrape time, so any API process
reports the same figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from drip.models import PENDING, Delivery
from drip.reports.funnel import scheduler_lag

if TYPE_CHECKING:
    from drip.runtime import Runtime

log = structlog.get_logger(__name__)

SIGNUPS = Counter(
    "drip_signups_total", "Signups received, by sequence and outcome", ["sequence", "outcome"]
)
DELIVERIES = Counter(
    "drip_deliveries_total",
    "Deliveries finished by workers, by outcome",
    ["sequence", "step", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "drip_provider_latency_seconds",
    "Time the transport took to accept a message",
    ["transport"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_EVENTS = Counter(
    "drip_webhook_events_total", "Provider events received, by type", ["event"]
)
PLANS_REFUSED = Counter(
    "drip_plans_refused_total",
    "Planned rows the database refused as a second pending or sent row of a step (a bug)",
)


class StateCollector(Collector):
    """Gauges read from the database and Redis when Prometheus scrapes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "drip_scheduler_lag_seconds", "Now minus the oldest due, unclaimed delivery"
        )
        pending = GaugeMetricFamily(
            "drip_deliveries_pending", "Deliveries not yet finished", labels=["sequence", "status"]
        )
        depth = GaugeMetricFamily(
            "drip_queue_depth", "Messages in a Dramatiq queue (incl. in flight)", labels=["queue"]
        )
        try:
            with self.runtime.sessions() as session:
                lag.add_metric([], scheduler_lag(session, now=datetime.now(UTC)).seconds)
                for sequence, status, count in session.execute(
                    select(Delivery.sequence_id, Delivery.status, func.count())
                    .where(Delivery.status.in_(PENDING))
                    .group_by(Delivery.sequence_id, Delivery.status)
                ):
                    pending.add_metric([sequence, status.value], count)
        except Exception as exc:  # a scrape must answer even when the database is down
            log.warning("metrics.database_unavailable", error=str(exc).splitlines()[0])
        try:
            client: Any = self.runtime.broker.client  # type: ignore[attr-defined]
            namespace = self.runtime.broker.namespace  # type: ignore[attr-defined]
            from drip.runtime import QUEUES

            for queue in QUEUES:
                depth.add_metric(
                    [queue],
                    client.hlen(f"{namespace}:{queue}.msgs")
                    + client.hlen(f"{namespace}:{queue}.DQ.msgs"),
                )
        except Exception as exc:
            log.warning("metrics.redis_unavailable", error=str(exc))
        yield from (lag, pending, depth)
