"""Transports send one `OutgoingEmail` and return the provider's message id.

`sendgrid` posts to the v3 Mail Send API; `outbox` writes `.eml` files (the embedded
default); `memory` keeps messages in a list for tests that run without services.
"""

from __future__ import annotations

from drip.send.transports.base import Transport
from drip.send.transports.memory import MemoryTransport
from drip.send.transports.outbox import OutboxTransport
from drip.send.transports.sendgrid import SendGridTransport

__all__ = ["MemoryTransport", "OutboxTransport", "SendGridTransport", "Transport"]
