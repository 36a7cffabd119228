"""The tables: contacts, enrollments, deliveries (the schedule) and provider events."""

from drip.models.base import Base
from drip.models.contact import Contact, ContactStatus
from drip.models.delivery import PENDING, Delivery, DeliveryStatus
from drip.models.enrollment import Enrollment, EnrollmentStatus
from drip.models.event import ProviderEvent

__all__ = [
    "PENDING",
    "Base",
    "Contact",
    "ContactStatus",
    "Delivery",
    "DeliveryStatus",
    "Enrollment",
    "EnrollmentStatus",
    "ProviderEvent",
]
