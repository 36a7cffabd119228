"""Everything a process needs, built once from settings at the edge (CLI, worker, API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from dramatiq import Actor, Broker
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from drip.broker import build_broker, embedded_redis_url
from drip.config import Settings, TransportName
from drip.contacts.identity import use_hash_key
from drip.contacts.keys import hash_key_candidates, settle_hash_key
from drip.db import session_factory, transaction, utcnow
from drip.deliveries.enqueue import enqueue_after_commit
from drip.dispatch.scheduler import RECOVERY_JOBS, Scheduler, SchedulerPolicy
from drip.events.actor import EVENTS_QUEUE, declare_events_actor
from drip.events.contact_actor import declare_contact_events_actor
from drip.events.verify import SignatureVerifier
from drip.pools import process_engine
from drip.send import actor as send_actor
from drip.send.sender import DeliverySender, SendPolicy
from drip.send.throttle import SendThrottle
from drip.send.transports import OutboxTransport, SendGridTransport, Transport
from drip.sequences.catalog import SequenceCatalog
from drip.signup.limits import SignupLimiter
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner
from drip.webhooks.actor import (
    WEBHOOKS_QUEUE,
    SenderPool,
    declare_webhooks_actor,
    enqueue_webhooks,
)
from drip.webhooks.config_file import load_endpoints_file
from drip.webhooks.delivery import WebhookSender
from drip.webhooks.endpoints import sync_file_endpoints
from drip.webhooks.outbox import deliver_after_commit
from drip.webhooks.recovery import enqueue_due_webhooks_job

log = structlog.get_logger(__name__)

#: Every queue a drip worker consumes.
QUEUES = (send_actor.SEND_QUEUE, EVENTS_QUEUE, WEBHOOKS_QUEUE)


def build_transport(settings: Settings) -> Transport:
    """The transport settings choose: SendGrid with an API key, else the outbox."""
    if settings.transport_name is TransportName.SENDGRID:
        if not settings.sendgrid_api_key:
            raise ValueError("DRIP_TRANSPORT=sendgrid needs DRIP_SENDGRID_API_KEY")
        return SendGridTransport(
            api_key=settings.sendgrid_api_key,
            host=settings.sendgrid_host,
            timeout=settings.sendgrid_timeout,
        )
    return OutboxTransport(settings.outbox_dir)


@dataclass
class Runtime:
    """What one process needs, built from settings: database, broker, catalog, transport, sender."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    catalog: SequenceCatalog
    transport: Transport
    links: Links
    signer: TokenSigner
    broker: Broker
    send_actor: Actor[[int], None]
    sender: DeliverySender
    webhook_verifier: SignatureVerifier | None = None
    signup_limiter: SignupLimiter | None = None
    webhook_pool: SenderPool | None = None

    def enqueue(self, delivery_ids: Sequence[int]) -> None:
        """Enqueue one send message per delivery id."""
        send_actor.enqueue_sends(self.broker, delivery_ids)

    def enqueue_after_commit(self, delivery_ids: Sequence[int]) -> bool:
        """Enqueue committed `queued` rows, or hand them back to the scheduler when Redis
        refuses; True when the broker took them (see `drip.deliveries.enqueue`)."""
        return enqueue_after_commit(self.enqueue, self.sessions, delivery_ids)

    def enqueue_webhooks(self, row_ids: list[int]) -> None:
        """Enqueue outbox rows for delivery (after the transaction that wrote them commits)."""
        enqueue_webhooks(self.broker, row_ids)

    def scheduler(self) -> Scheduler:
        """A scheduler on this runtime's database, catalog and broker, with its recovery jobs."""
        s = self.settings
        return Scheduler(
            sessions=self.sessions,
            catalog=self.catalog,
            enqueue=self.enqueue,
            policy=SchedulerPolicy(
                batch_size=s.scheduler_batch_size,
                queue_lease=s.queue_lease,
                send_lease=s.send_lease,
                ambiguous_policy=s.ambiguous_policy,
                confirmation_ttl=s.confirmation_ttl,
                event_retention=timedelta(days=s.event_retention),
            ),
            jobs=(*RECOVERY_JOBS, enqueue_due_webhooks_job(self.enqueue_webhooks)),
        )

    def close(self) -> None:
        """Close the sender, the transport, the broker and the database pool."""
        if self.webhook_pool is not None:
            self.webhook_pool.close()
        self.sender.close()
        self.transport.close()
        self.broker.close()
        self.engine.dispose()


def load_catalog(settings: Settings) -> SequenceCatalog:
    """The sequences in `settings.sequences_dir`, loaded and checked (`SequenceError` lists
    every problem)."""
    return SequenceCatalog.load(
        settings.sequences_dir, postal_address=settings.resolved_postal_address()
    )


def build_runtime(
    settings: Settings,
    *,
    transport: Transport | None = None,
    broker: Broker | None = None,
    catalog: SequenceCatalog | None = None,
) -> Runtime:
    """Build every part from `settings`; the sequences are checked here, before any send,
    unless `catalog` holds them already checked (`load_catalog`: a worker process reuses the
    one `drip worker` checked before Dramatiq forked it)."""
    if catalog is None:
        catalog = load_catalog(settings)
    engine = process_engine(settings)
    sessions = session_factory(engine)
    signer = TokenSigner(settings.resolved_secret_key(), settings.fallback_keys)
    candidates = hash_key_candidates(
        hash_key=settings.hash_key,
        secret_key=settings.resolved_secret_key(),
        fallback_keys=settings.fallback_keys,
    )
    use_hash_key(settle_hash_key(sessions, candidates))
    links = Links(
        signer=signer, base_url=settings.base_url, unsubscribe_mailto=settings.unsubscribe_mailto
    )
    transport = transport or build_transport(settings)
    broker = broker or build_broker(
        settings.redis_url, namespace=settings.redis_namespace, state_dir=settings.state_dir
    )
    sender = DeliverySender(
        sessions=sessions,
        catalog=catalog,
        transport=transport,
        links=links,
        policy=SendPolicy(
            send_lease=settings.send_lease,
            max_attempts=settings.send_max_attempts,
            min_backoff=settings.send_min_backoff,
            max_backoff=settings.send_max_backoff,
            queue_lease=settings.queue_lease,
            ambiguous_wait=settings.ambiguous_wait,
            daily_cap=settings.max_emails_per_day,
        ),
        throttle=SendThrottle(
            settings.redis_url or embedded_redis_url(settings.state_dir),
            namespace=settings.redis_namespace,
            rate=settings.send_rate,
        )
        if settings.send_rate
        else None,
        concurrency=settings.send_concurrency,
    )
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        catalog=catalog,
        transport=transport,
        links=links,
        signer=signer,
        broker=broker,
        send_actor=send_actor.declare_send_actor(broker, sender),
        sender=sender,
        webhook_verifier=SignatureVerifier(settings.sendgrid_webhook_public_key)
        if settings.sendgrid_webhook_public_key
        else None,
    )
    declare_events_actor(broker, sessions)
    declare_contact_events_actor(
        broker,
        sessions=sessions,
        catalog=catalog,
        queue_lease=settings.queue_lease,
        enqueue_committed=runtime.enqueue_after_commit,
    )
    file_endpoints = load_endpoints_file(
        settings.sequences_dir, development=not settings.is_production
    )
    try:
        with transaction(sessions) as session:
            sync_file_endpoints(session, file_endpoints, now=utcnow())
    except SQLAlchemyError as exc:
        # The API must start (and answer 503) while the database is down; the file is
        # synced by the next process that starts with the database up.
        log.warning("webhooks.sync_deferred", error=str(exc))
    runtime.webhook_pool = SenderPool(WebhookSender(sessions))
    declare_webhooks_actor(broker, runtime.webhook_pool)
    deliver_after_commit(sessions, runtime.enqueue_webhooks)
    runtime.signup_limiter = SignupLimiter(
        settings.redis_url or embedded_redis_url(settings.state_dir),
        namespace=settings.redis_namespace,
        per_ip=settings.signup_rate_per_ip,
        per_address=settings.signup_rate_per_address,
    )
    return runtime
