"""Prometheus metrics.

Counters and the latency histogram live in the process that does the work (the API for
signups and webhooks, the worker for sends; `drip worker` exposes them with Dramatiq's
Prometheus middleware). Gauges that describe shared state (scheduler lag, pending rows,
queue depth) are read from PostgreSQL and Redis, at most once per `STATE_TTL` seconds
however often the endpoint is scraped, so any API process reports the same figures.

The signup counter has no outcome label on purpose: the API answers every accepted signup
with the same 202 so that nobody can learn whether an address is on the list, and a
per-outcome count read before and after one request would undo that (and a `honeypot`
label would tell a bot its trap was seen).

This module knows nothing of `drip.runtime`: the API hands the collector what it reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from drip.models import PENDING, Delivery
from drip.reports.funnel import scheduler_lag

log = structlog.get_logger(__name__)

#: Seconds the shared-state gauges are reused between scrapes (each read runs a GROUP BY).
STATE_TTL = 5.0

SIGNUPS = Counter(
    "drip_signups_total",
    "Signups answered 202, whatever happened to them (no outcome label: see drip.metrics)",
)
SIGNUPS_RATE_LIMITED = Counter(
    "drip_signups_rate_limited_total", "Signups refused with 429 by the per-IP or address limit"
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
    """Gauges read from the database and Redis, cached for `ttl` seconds between scrapes."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        broker: Any,
        queues: Sequence[str],
        ttl: float = STATE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.broker = broker
        self.queues = tuple(queues)
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges: the cached ones while younger than `ttl`, else freshly read."""
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= self.ttl:
                self._cached = (now, self._read())
            families = self._cached[1]
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
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
            with self.sessions() as session:
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
            client: Any = self.broker.client
            namespace = self.broker.namespace
            for queue in self.queues:
                depth.add_metric(
                    [queue],
                    client.hlen(f"{namespace}:{queue}.msgs")
                    + client.hlen(f"{namespace}:{queue}.DQ.msgs"),
                )
        except Exception as exc:
            log.warning("metrics.redis_unavailable", error=str(exc))
        return [lag, pending, depth]
