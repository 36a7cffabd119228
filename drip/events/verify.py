"""Verify SendGrid's Signed Event Webhook on the raw request body.

SendGrid signs `timestamp + raw body` with ECDSA (P-256, SHA-256). The signature must be
checked on the bytes as received, before any JSON parsing, so the `sendgrid` library's
`EventWebhook` is given the body decoded exactly as sent.
"""

from __future__ import annotations

import binascii

from cryptography.exceptions import UnsupportedAlgorithm
from sendgrid.helpers.eventwebhook import EventWebhook

#: Headers SendGrid puts the signature and its timestamp in.
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class SignatureVerifier:
    """Holds the verification key, loaded once."""

    def __init__(self, public_key: str) -> None:
        self._webhook = EventWebhook(public_key)

    def verify(self, body: bytes, signature: str | None, timestamp: str | None) -> bool:
        """Whether `signature` signs `timestamp` + `body` with the configured key."""
        if not signature or not timestamp:
            return False
        try:
            payload = body.decode("utf-8")
            return bool(self._webhook.verify_signature(payload, signature, timestamp))
        except (UnicodeDecodeError, binascii.Error, ValueError, UnsupportedAlgorithm):
            return False
