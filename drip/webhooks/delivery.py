"""One attempt at one outbox row: claim it, sign it, POST it, record what happened.

The claim is a conditional UPDATE (pending, due, not held by another sender), so two
messages for one row never send it at once; the HTTP call runs outside any transaction.
A 2xx delivers the row. A 410 says the receiver is gone for good: the endpoint is
disabled and what it had pending fails. Anything else (another status, a timeout, a
refused connection, a missing secret) is tried again with backoff until the retry
window closes, then the row is kept as failed for `drip webhooks replay`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import httpx
import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from drip.db import transaction, utcnow
from drip.models import Contact, WebhookAttempt, WebhookEndpoint, WebhookEvent, WebhookStatus
from drip.webhooks.endpoints import disable_endpoint
from drip.webhooks.events import ContactRef, build_body
from drip.webhooks.retries import RetryPolicy, next_attempt
from drip.webhooks.signing import SecretUnusable, signed_headers

log = structlog.get_logger(__name__)

#: Seconds to connect to a receiver, and to wait for its answer.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0

#: A sender holds a row this long: longer than any attempt can take.
CLAIM = timedelta(seconds=60)

#: The longest error text kept per attempt.
MAX_ERROR = 500


class Outcome(StrEnum):
    """How one delivery attempt to an endpoint ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"  # 410: the endpoint is disabled
    SKIPPED = "skipped"  # not pending, not due, or held by another sender


@dataclass(frozen=True)
class Claimed:
    """What one attempt needs, read while claiming the row."""

    row_id: int
    event_id: str
    body: str
    url: str
    secret_env: str


@dataclass
class WebhookSender:
    """Delivers outbox rows; safe to call from several threads at once."""

    sessions: sessionmaker[Session]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
            follow_redirects=False,  # a redirect is an answer, not a delivery
            headers={"user-agent": "drip-webhooks/1"},
        )

    def deliver(self, row_id: int) -> Outcome:
        """One attempt at the row, if it is pending, due and free; return what happened."""
        claimed = self._claim(row_id)
        if claimed is None:
            return Outcome.SKIPPED
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        secret = self.environ.get(claimed.secret_env)
        try:
            if not secret:
                raise SecretUnusable(f"{claimed.secret_env} is not set")
            headers = signed_headers(
                secret, msg_id=claimed.event_id, at=self.clock(), body=claimed.body
            )
            # Streamed and closed unread: a receiver's answer body is never needed.
            with self.client.stream(
                "POST", claimed.url, content=claimed.body.encode(), headers=headers
            ) as response:
                status = response.status_code
        except SecretUnusable as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR] or type(exc).__name__
        elapsed_ms = int((time.monotonic() - started) * 1000)
        outcome = self._record(claimed, status=status, error=error, elapsed_ms=elapsed_ms)
        log.info(
            "webhooks.attempt",
            event_id=claimed.event_id,
            row_id=row_id,
            status=status,
            outcome=outcome.value,
            ms=elapsed_ms,
            error=error,
        )
        return outcome

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def _claim(self, row_id: int) -> Claimed | None:
        now = self.clock()
        with transaction(self.sessions) as session:
            taken = session.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id == row_id,
                    WebhookEvent.status == WebhookStatus.PENDING,
                    WebhookEvent.next_attempt_at <= now,
                    or_(WebhookEvent.claimed_until.is_(None), WebhookEvent.claimed_until < now),
                )
                .values(claimed_until=now + CLAIM)
                .returning(WebhookEvent.id)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if taken is None:
                return None
            row = session.get_one(WebhookEvent, row_id)
            endpoint = session.get_one(WebhookEndpoint, row.endpoint_id)
            if not endpoint.enabled:
                row.status, row.claimed_until = WebhookStatus.FAILED, None
                row.last_error = f"endpoint disabled: {endpoint.disabled_reason}"
                return None
            contact = _contact_ref(session, row.contact_id)
            return Claimed(
                row_id=row.id,
                event_id=row.event_id,
                body=build_body(row.event_type, row.occurred_at, row.data, contact),
                url=endpoint.url,
                secret_env=endpoint.secret_env,
            )

    def _record(
        self, claimed: Claimed, *, status: int | None, error: str | None, elapsed_ms: int
    ) -> Outcome:
        now = self.clock()
        with transaction(self.sessions) as session:
            session.add(
                WebhookAttempt(
                    webhook_event_id=claimed.row_id,
                    attempted_at=now,
                    status_code=status,
                    error=error,
                    duration_ms=elapsed_ms,
                )
            )
            row = session.scalars(
                select(WebhookEvent).where(WebhookEvent.id == claimed.row_id).with_for_update()
            ).one()
            row.attempts += 1
            row.claimed_until = None
            row.last_status_code, row.last_error = status, error
            if row.status is not WebhookStatus.PENDING:
                return Outcome.SKIPPED  # the endpoint was removed meanwhile
            if status is not None and 200 <= status < 300:
                row.status, row.delivered_at, row.last_error = WebhookStatus.DELIVERED, now, None
                return Outcome.DELIVERED
            if status == 410:
                endpoint = session.get_one(WebhookEndpoint, row.endpoint_id)
                row.status = WebhookStatus.FAILED
                disable_endpoint(
                    session, endpoint, reason="the receiver answered 410 Gone", now=now
                )
                log.warning("webhooks.endpoint_gone", url=endpoint.url)
                return Outcome.GONE
            if error is None:
                row.last_error = f"HTTP {status}"
            retry_at = next_attempt(
                row.attempts, now=now, give_up_at=row.give_up_at, policy=self.retry
            )
            if retry_at is None:
                row.status = WebhookStatus.FAILED
                return Outcome.FAILED
            row.next_attempt_at = retry_at
            return Outcome.RETRY


def _contact_ref(session: Session, contact_id: int | None) -> ContactRef | None:
    """The contact's public id and address, read now: an erased contact has no address."""
    if contact_id is None:
        return None
    found = session.execute(
        select(Contact.public_id, Contact.email).where(Contact.id == contact_id)
    ).one_or_none()
    if found is None:
        return ContactRef(public_id=None, email=None)
    return ContactRef(public_id=found.public_id, email=found.email)
