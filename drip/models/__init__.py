"""The tables: contacts, enrollments, deliveries (the schedule), provider events and
outbound webhooks."""

from drip.models.api_key import ApiKey, ApiRequest
from drip.models.base import Base
from drip.models.click import LinkClick
from drip.models.contact import Contact, ContactStatus
from drip.models.contact_event import ContactEvent
from drip.models.delivery import PENDING, Delivery, DeliveryStatus
from drip.models.enrollment import Enrollment, EnrollmentStatus
from drip.models.event import ProviderEvent
from drip.models.funnel_counts import DeliveryCount, DeliveryCountDelta, FunnelAttribution
from drip.models.keys import HashKeyCheck
from drip.models.operations import AuditEntry, Download, SequenceState
from drip.models.retention import HousekeepingRun, ProviderEventId
from drip.models.webhook import (
    EndpointSource,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
    WebhookStatus,
    WebhookSubscription,
)

__all__ = [
    "PENDING",
    "ApiKey",
    "ApiRequest",
    "AuditEntry",
    "Base",
    "Contact",
    "ContactEvent",
    "ContactStatus",
    "Delivery",
    "DeliveryCount",
    "DeliveryCountDelta",
    "DeliveryStatus",
    "Download",
    "EndpointSource",
    "Enrollment",
    "EnrollmentStatus",
    "FunnelAttribution",
    "HashKeyCheck",
    "HousekeepingRun",
    "LinkClick",
    "ProviderEvent",
    "ProviderEventId",
    "SequenceState",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookStatus",
    "WebhookSubscription",
]
