"""The SendGrid transport against the schema-checking fake: each answer becomes the outcome
the state machine needs, and emails share kept-alive connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from drip.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from drip.render.reuse import SharedBody
from drip.send.message import OutgoingEmail
from drip.send.transmit import Transmitter
from drip.send.transports.sendgrid import SendGridTransport
from drip.testing.fake_sendgrid import FakeSendGrid, Faults, Scripted
from tests.conftest import sendgrid_schema_dir
from tests.outgoing import outgoing_email as email

SCHEMA = sendgrid_schema_dir() / "mail_send.schema.json"


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
    faults = Faults(slow_seconds=1.0)
    setattr(faults, fault, 1.0)  # every request meets this fault
    fake = FakeSendGrid(SCHEMA, faults=faults).start()
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


def shared_email(delivery_id: int, key: tuple[object, ...] = ("quick", "second")) -> OutgoingEmail:
    """An email whose body the renderer reused: the link token stands in the shared body."""
    link = f"https://drip.example.com/download/quick/token{delivery_id}"
    body = SharedBody(
        key=key,
        html='<p><a href="dripslotTOKENz">Download</a></p>',
        text="Download: dripslotTOKENz\n",
        substitutions={"dripslotTOKENz": link},
    )
    return replace(
        email(delivery_id),
        subject=f"For reader {delivery_id}",
        html=body.html.replace("dripslotTOKENz", link),
        text=body.text.replace("dripslotTOKENz", link),
        shared=body,
    )


def test_emails_sharing_a_body_go_out_in_one_request_each_with_its_own_values(
    provider: FakeSendGrid,
) -> None:
    emails = [shared_email(n) for n in (11, 12, 13)]
    answers = Transmitter(transport_for(provider), concurrency=4).send_all(emails)
    # One request, three recipients, one message id for all
    assert len(provider.requests) == 1
    assert len(provider.requests[0]["personalizations"]) == 3
    assert len(set(answers)) == 1
    assert answers[0] == provider.accepted[0].message_id
    # And each recipient gets exactly the email a request of its own would have carried
    for sent, got in zip(emails, provider.accepted, strict=True):
        assert got.delivery_id == sent.custom_args["delivery_id"]
        assert got.payload["personalizations"][0]["to"][0]["email"] == sent.to_email
        assert got.payload["subject"] == sent.subject
        assert got.payload["headers"] == sent.headers
        assert [c["value"] for c in got.payload["content"]] == [sent.text, sent.html]


def test_a_group_refused_outright_is_sent_again_one_email_at_a_time(
    provider: FakeSendGrid,
) -> None:
    # Given the provider refuses the group request (as one bad address would make it)
    provider.script([Scripted(400, body={"errors": [{"message": "Invalid to", "field": "to"}]})])
    emails = [shared_email(n) for n in (21, 22)] + [email(23)]
    answers = Transmitter(transport_for(provider), concurrency=1).send_all(emails)
    # Then each email was tried on its own and got its own answer
    assert all(isinstance(a, str) for a in answers)
    assert len(set(answers)) == 3
    assert [a.delivery_id for a in provider.accepted] == ["21", "22", "23"]
    assert [len(r["personalizations"]) for r in provider.requests] == [2, 1, 1, 1]


def test_a_lost_answer_for_a_group_is_ambiguous_for_each_email() -> None:
    fake = FakeSendGrid(SCHEMA, faults=Faults(accept_then_drop=1.0)).start()
    try:
        answers = Transmitter(transport_for(fake)).send_all([shared_email(n) for n in (31, 32)])
        assert all(isinstance(a, AmbiguousSendError) for a in answers)
        assert sorted(a.delivery_id or "" for a in fake.accepted) == ["31", "32"]
    finally:
        fake.stop()
