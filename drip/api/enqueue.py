"""Enqueue a delivery right after its transaction commits, or hand it back to the scheduler."""

from __future__ import annotations

import structlog
from sqlalchemy import update

from drip.db import transaction
from drip.models import Delivery, DeliveryStatus
from drip.runtime import Runtime

log = structlog.get_logger(__name__)


def enqueue_or_release(runtime: Runtime, delivery_id: int) -> None:
    """Send now; if Redis is down, the row goes back to `scheduled` and the scheduler sends it."""
    try:
        runtime.enqueue([delivery_id])
    except Exception as exc:
        log.warning("api.enqueue_failed", delivery_id=delivery_id, error=str(exc))
        with transaction(runtime.sessions) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.QUEUED)
                .values(status=DeliveryStatus.SCHEDULED, lease_until=None)
            )
