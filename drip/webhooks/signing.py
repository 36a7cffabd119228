"""Signing a body as the Standard Webhooks specification says, with its own library.

`webhook-signature` is `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`,
keyed by the secret with its `whsec_` prefix stripped and the rest base64-decoded; the
timestamp is the attempt's, in whole seconds, so a receiver can refuse stale replays.
"""

from __future__ import annotations

import binascii
from datetime import datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError


class SecretUnusable(ValueError):
    """The configured secret is missing, empty or not base64."""


def signed_headers(secret: str, *, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The headers of one attempt: id, timestamp, signature and the JSON content type."""
    try:
        signer = Webhook(secret)
    except (binascii.Error, ValueError, EmptyWebhookSecretError) as exc:
        raise SecretUnusable(f"the secret is not a base64 whsec_ secret: {exc}") from exc
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(msg_id=msg_id, timestamp=at, data=body),
        "content-type": "application/json",
    }
