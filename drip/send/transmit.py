"""Hand a batch of emails to the transport, several at a time.

Emails whose body the renderer reused for the same input go out in one request when the
transport can carry many recipients (`GroupTransport`) and no shared send rate is set:
one answer then stands for each of them. A group the provider refuses outright (one bad
address spoils a whole request) is sent again one email at a time, so each gets its own
answer.

A batch's emails go out concurrently (up to `concurrency` in flight per process), so a
batch takes about as long as its slowest call rather than the sum of them: the contacts
it holds locked for share are held that long, and a provider 150 ms away still allows
many emails a second per worker thread.

A batch has a deadline (`DeliverySender` gives it `SendPolicy.send_window` from its
start): an email whose call has not started by then is not sent and answers `Throttled`
(held back, no attempt spent), so a batch behind a slow provider or a low shared send rate
ends well within its actor's time limit instead of being cut off mid-batch with answers
the provider already gave.

Every answer comes back as a value, never raised: the provider's id, or the SendError
that says what happened. Anything else a transport raises is treated as ambiguous: the
request may have gone out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from drip.errors import AmbiguousSendError, PermanentSendError, SendError, Throttled
from drip.metrics import PROVIDER_LATENCY
from drip.send.message import OutgoingEmail
from drip.send.throttle import SendThrottle
from drip.send.transports.base import GroupTransport, Transport

#: Recipients per request at most (SendGrid takes up to 1,000 personalizations).
MAX_GROUP = 1000

#: One email's answer: the provider's message id, or why it was not (surely) sent.
Answer = str | SendError


class Transmitter:
    """Hands a batch's emails to the transport, grouped where they share a body, a few at once."""

    def __init__(
        self,
        transport: Transport,
        *,
        throttle: SendThrottle | None = None,
        concurrency: int = 8,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.throttle = throttle
        self.concurrency = max(1, concurrency)
        self.monotonic = monotonic
        self._pool: ThreadPoolExecutor | None = None

    def send_all(
        self, emails: Sequence[OutgoingEmail], *, deadline: float | None = None
    ) -> list[Answer]:
        """Each email's answer, in the order given. No call starts after `deadline` (a
        `monotonic` time): the emails left answer `Throttled`, never sent."""
        positions = self._groups(emails)
        groups = [[emails[n] for n in group] for group in positions]

        def send_group(group: list[OutgoingEmail]) -> list[Answer]:
            return self._send_group(group, deadline)

        if len(groups) == 1 or self.concurrency == 1:
            answers = [send_group(group) for group in groups]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="drip-send")
            answers = list(self._pool.map(send_group, groups))
        in_order: list[Answer | None] = [None] * len(emails)
        for group, answer in zip(positions, answers, strict=True):
            for n, one in zip(group, answer, strict=True):
                in_order[n] = one
        return [answer for answer in in_order if answer is not None]

    def _groups(self, emails: Sequence[OutgoingEmail]) -> list[list[int]]:
        """Positions of the emails that go out together (each alone, unless they share a body
        and the transport can carry them in one request)."""
        together = isinstance(self.transport, GroupTransport) and self.throttle is None
        groups: dict[object, list[int]] = {}
        for n, email in enumerate(emails):
            key = email.shared.key if together and email.shared is not None else n
            groups.setdefault(key, []).append(n)
        return [
            chunk
            for group in groups.values()
            for chunk in (group[i : i + MAX_GROUP] for i in range(0, len(group), MAX_GROUP))
        ]

    def _send_group(self, emails: list[OutgoingEmail], deadline: float | None) -> list[Answer]:
        transport = self.transport
        if len(emails) == 1 or not isinstance(transport, GroupTransport):
            return [self.send_one(email, deadline=deadline) for email in emails]
        answer = self._call(lambda: transport.send_group(emails), deadline)
        if isinstance(answer, PermanentSendError):
            return [self.send_one(email, deadline=deadline) for email in emails]
        return [answer] * len(emails)

    def send_one(self, email: OutgoingEmail, *, deadline: float | None = None) -> Answer:
        """Send one email; its answer is the provider's message id or the SendError it raised
        (`Throttled`, not sent, when `deadline` has passed)."""
        return self._call(lambda: self.transport.send(email), deadline)

    def _call(self, send: Callable[[], str], deadline: float | None) -> Answer:
        try:
            if deadline is not None and self.monotonic() >= deadline:
                raise Throttled("not sent: the batch's time to send ran out before its turn")
            if self.throttle is not None:
                self.throttle.acquire(deadline=deadline)
            started = time.perf_counter()
            message_id = send()
        except SendError as exc:
            return exc
        except Exception as exc:  # a transport bug must not lose the batch
            return AmbiguousSendError(f"the transport failed: {type(exc).__name__}: {exc}")
        PROVIDER_LATENCY.labels(type(self.transport).__name__).observe(
            time.perf_counter() - started
        )
        return message_id

    def close(self) -> None:
        """Stop the worker threads and close the transport."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
