"""Sign webhook bodies the way SendGrid's Signed Event Webhook does (ECDSA P-256, SHA-256)."""

from __future__ import annotations

import base64
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from drip.events.verify import SIGNATURE_HEADER, TIMESTAMP_HEADER


class WebhookSigner:
    """A fresh key pair; `public_key` is what DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY takes."""

    def __init__(self) -> None:
        self._private = ec.generate_private_key(ec.SECP256R1())
        der = self._private.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """Signed headers for `body` at `timestamp` (epoch seconds; default: now)."""
        timestamp = timestamp if timestamp is not None else str(int(time.time()))
        signature = self._private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: timestamp,
            "Content-Type": "application/json",
        }
