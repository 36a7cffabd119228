"""SendGrid v3 Mail Send over a pooled keep-alive HTTP client.

The request body is built with the official `sendgrid` library's Mail helpers; the
library's own HTTP client opens a connection per request, so the body is posted with
an httpx client that keeps connections alive. Outcomes:

- 202: sent; the `X-Message-Id` header is the provider's message id.
- 429: transient; retry after `X-RateLimit-Reset` (epoch seconds) when given.
- 5xx, and a connection that could not be made: transient.
- an answer lost after the request went out (read timeout, reset): ambiguous.
- any other status (400, 401, 403, 413...): permanent, with the provider's error text.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from sendgrid.helpers.mail import CustomArg, From, Header, Mail, ReplyTo, To

from drip.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from drip.send.message import OutgoingEmail

#: Path of the Mail Send endpoint below the configured host.
MAIL_SEND_PATH = "/v3/mail/send"


def build_payload(email: OutgoingEmail) -> dict[str, Any]:
    """The Mail Send request body for `email`, made by the sendgrid helpers."""
    mail = Mail(
        from_email=From(email.sender.email, email.sender.name),
        to_emails=To(email.to_email, email.to_name),
        subject=email.subject,
        plain_text_content=email.text,
        html_content=email.html,
    )
    if email.reply_to:
        mail.reply_to = ReplyTo(email.reply_to.email, email.reply_to.name)
    for name, value in email.headers.items():
        mail.header = Header(name, value)
    if email.custom_args:
        mail.custom_arg = [CustomArg(k, str(v)) for k, v in email.custom_args.items()]
    payload: dict[str, Any] = mail.get()
    return payload


def provider_error_text(response: httpx.Response) -> str:
    """The provider's own words for a refusal, e.g. `400: The from address does not match...`."""
    try:
        errors = response.json().get("errors") or []
        messages = [
            f"{e.get('message')}" + (f" (field {e['field']})" if e.get("field") else "")
            for e in errors
        ]
        if messages:
            return f"{response.status_code}: " + "; ".join(messages)
    except (json.JSONDecodeError, AttributeError):
        pass
    return f"{response.status_code}: {response.text[:500]}"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds until the rate limit resets, from `X-RateLimit-Reset` or `Retry-After`."""
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(float(reset) - time.time(), 0.0)
        except ValueError:
            pass
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            pass
    return None


class SendGridTransport:
    def __init__(self, *, api_key: str, host: str, timeout: float, pool_size: int = 20) -> None:
        self.client = httpx.Client(
            base_url=host.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "drip"},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
        )

    def send(self, email: OutgoingEmail) -> str:
        try:
            response = self.client.post(MAIL_SEND_PATH, json=build_payload(email))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing was sent: safe to retry.
            raise TransientSendError(f"SendGrid unreachable: {exc!r}") from exc
        except httpx.TransportError as exc:
            # The request went out and the answer was lost (read timeout, reset, broken
            # response): SendGrid may have accepted it, and it has no idempotency key.
            raise AmbiguousSendError(f"SendGrid's answer was lost: {exc!r}") from exc
        if response.status_code == 202:
            return str(response.headers.get("X-Message-Id", ""))
        if response.status_code == 429:
            raise TransientSendError(
                f"SendGrid rate limit: {provider_error_text(response)}",
                retry_after=retry_after_seconds(response),
            )
        if response.status_code >= 500:
            raise TransientSendError(f"SendGrid error {provider_error_text(response)}")
        raise PermanentSendError(f"SendGrid refused the message: {provider_error_text(response)}")

    def close(self) -> None:
        self.client.close()
