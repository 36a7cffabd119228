"""Hand a batch of emails to the transport, several at a time.

A batch's emails go out concurrently (up to `concurrency` in flight per process), so a
batch takes about as long as its slowest call rather than the sum of them: the contacts
it holds locked for share are held that long, and a provider 150 ms away still allows
many emails a second per worker thread.

Every answer comes back as a value, never raised: the provider's id, or the SendError
that says what happened. Anything else a transport raises is treated as ambiguous: the
request may have gone out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from drip.errors import AmbiguousSendError, SendError
from drip.metrics import PROVIDER_LATENCY
from drip.send.message import OutgoingEmail
from drip.send.throttle import SendThrottle
from drip.send.transports.base import Transport

#: One email's answer: the provider's message id, or why it was not (surely) sent.
Answer = str | SendError


class Transmitter:
    def __init__(
        self, transport: Transport, *, throttle: SendThrottle | None = None, concurrency: int = 8
    ) -> None:
        self.transport = transport
        self.throttle = throttle
        self.concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None

    def send_all(self, emails: Sequence[OutgoingEmail]) -> list[Answer]:
        """Each email's answer, in the order given."""
        if len(emails) <= 1 or self.concurrency == 1:
            return [self.send_one(email) for email in emails]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="drip-send")
        return list(self._pool.map(self.send_one, emails))

    def send_one(self, email: OutgoingEmail) -> Answer:
        try:
            if self.throttle is not None:
                self.throttle.acquire()
            started = time.perf_counter()
            message_id = self.transport.send(email)
        except SendError as exc:
            return exc
        except Exception as exc:  # a transport bug must not lose the batch
            return AmbiguousSendError(f"the transport failed: {type(exc).__name__}: {exc}")
        PROVIDER_LATENCY.labels(type(self.transport).__name__).observe(
            time.perf_counter() - started
        )
        return message_id

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
