"""Verify SendGrid's Signed Event Webhook on the raw request body.

SendGrid signs `timestamp + raw body` with ECDSA (P-256, SHA-256). The signature must be
checked on the bytes as received, before any JSON parsing, so the `sendgrid` library's
`EventWebhook` is given the body decoded exactly as sent. A signed timestamp further than
`TIMESTAMP_TOLERANCE` seconds from now is refused as well: a captured request cannot be
replayed later (replays would store nothing, thanks to `sg_event_id`, but each costs a
signature check and a transaction). The clock is injectable so that published test vectors,
signed long ago, can be checked at their own time.
"""

from __future__ import annotations

import binascii
import math
import time
from collections.abc import Callable

from cryptography.exceptions import UnsupportedAlgorithm
from sendgrid.helpers.eventwebhook import EventWebhook

#: Headers SendGrid puts the signature and its timestamp in.
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

#: Seconds a signed timestamp may be away from now, either way (clocks drift; SendGrid retries
#: a failed batch with a fresh signature).
TIMESTAMP_TOLERANCE = 300.0


class SignatureVerifier:
    """Holds the verification key, loaded once, and the clock timestamps are checked against."""

    def __init__(
        self,
        public_key: str,
        *,
        tolerance: float = TIMESTAMP_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._webhook = EventWebhook(public_key)
        self.tolerance = tolerance
        self.clock = clock

    def is_fresh(self, timestamp: str | None) -> bool:
        """Whether `timestamp` (epoch seconds) is within `tolerance` of the clock's now."""
        try:
            seconds = float(timestamp or "")
        except ValueError:
            return False
        return math.isfinite(seconds) and abs(self.clock() - seconds) <= self.tolerance

    def verify(self, body: bytes, signature: str | None, timestamp: str | None) -> bool:
        """Whether `signature` signs `timestamp` + `body` with the configured key."""
        if not signature or not timestamp:
            return False
        try:
            payload = body.decode("utf-8")
            return bool(self._webhook.verify_signature(payload, signature, timestamp))
        except (UnicodeDecodeError, binascii.Error, ValueError, UnsupportedAlgorithm):
            return False
