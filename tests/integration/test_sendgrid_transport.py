"""The SendGrid transport against the schema-checking fake: each answer becomes the outcome
the state machine needs, and emails share kept-alive connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from drip.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from drip.send.message import OutgoingEmail, unsubscribe_headers
from drip.send.transports.sendgrid import SendGridTransport
from drip.sequences.definition import Address
from drip.testing.fake_sendgrid import FakeSendGrid, Faults, Scripted
from tests.conftest import sendgrid_schema_dir

SCHEMA = sendgrid_schema_dir() / "mail_send.schema.json"


def email(delivery_id: int) -> OutgoingEmail:
    return OutgoingEmail(
        to_email=f"reader{delivery_id}@example.com",
        to_name="Reader",
        sender=Address(email="advice@example.com", name="Resume Desk"),
        reply_to=None,
        subject="Your executive resume template",
        html="<p>Hello</p>",
        text="Hello\n",
        headers=unsubscribe_headers(f"https://drip.example.com/unsubscribe/{delivery_id}"),
        custom_args={"delivery_id": str(delivery_id)},
    )


@pytest.fixture
def provider() -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid(SCHEMA, faults=Faults(slow_seconds=1.0)).start()
    yield fake
    fake.stop()
    assert not fake.violations


def transport_for(fake: FakeSendGrid, *, timeout: float = 5.0) -> SendGridTransport:
    return SendGridTransport(api_key=fake.api_key, host=fake.url, timeout=timeout, pool_size=4)


def test_accepted_emails_return_the_message_id_over_one_kept_alive_connection(
    provider: FakeSendGrid,
) -> None:
    transport = transport_for(provider)
    ids = [transport.send(email(n)) for n in range(20)]
    assert ids == [a.message_id for a in provider.accepted]
    assert [a.delivery_id for a in provider.accepted] == [str(n) for n in range(20)]
    assert transport.pool.num_connections == 1  # twenty emails, one TCP connection


def test_a_rate_limit_is_transient_and_says_when_it_resets(provider: FakeSendGrid) -> None:
    provider.script([Scripted(429, {"X-RateLimit-Reset": str(time.time() + 30)})])
    with pytest.raises(TransientSendError) as raised:
        transport_for(provider).send(email(1))
    assert raised.value.retry_after is not None
    assert 25 < raised.value.retry_after <= 30


@pytest.mark.parametrize("status", [500, 503])
def test_provider_errors_are_transient(provider: FakeSendGrid, status: int) -> None:
    provider.script([status])
    with pytest.raises(TransientSendError, match=str(status)):
        transport_for(provider).send(email(1))


def test_a_refusal_is_permanent_and_quotes_the_provider(provider: FakeSendGrid) -> None:
    refusal = {"errors": [{"message": "The from address does not match", "field": "from"}]}
    provider.script([Scripted(400, body=refusal)])
    with pytest.raises(PermanentSendError) as raised:
        transport_for(provider).send(email(1))
    assert "400: The from address does not match (field from)" in str(raised.value)


def test_a_wrong_key_is_permanent(provider: FakeSendGrid) -> None:
    transport = SendGridTransport(api_key="SG.wrong", host=provider.url, timeout=5)
    with pytest.raises(PermanentSendError, match="401"):
        transport.send(email(1))


@pytest.mark.parametrize("fault", ["reset", "accept_then_drop", "slow"])
def test_an_answer_lost_after_the_request_went_out_is_ambiguous(fault: str) -> None:
    fake = FakeSendGrid(SCHEMA, faults=Faults(slow_seconds=1.0, **{fault: 1.0})).start()
    try:
        with pytest.raises(AmbiguousSendError):
            transport_for(fake, timeout=0.3).send(email(1))
        assert [outcome for _, outcome in fake.log] == [fault]
    finally:
        fake.stop()


def test_an_unreachable_provider_is_transient() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: the connection is refused
        transport = SendGridTransport(api_key="SG.x", host=f"http://127.0.0.1:{port}", timeout=2)
        with pytest.raises(TransientSendError, match="unreachable"):
            transport.send(email(1))
