"""A group request's personalizations, built directly, are the ones SendGrid's own helpers
build: recipients in order, each with its name (when it has one), subject, headers,
substitutions and ids."""

from __future__ import annotations

from typing import Any

from sendgrid.helpers.mail import (
    CustomArg,
    From,
    Header,
    Mail,
    Personalization,
    ReplyTo,
    Substitution,
    To,
)

from drip.render.reuse import SharedBody
from drip.send.message import OutgoingEmail, unsubscribe_headers
from drip.send.transports.sendgrid import build_group_payload
from drip.sequences.definition import Address


def email(n: int, *, name: str | None) -> OutgoingEmail:
    return OutgoingEmail(
        to_email=f"reader{n}@example.com",
        to_name=name,
        sender=Address(email="advice@example.com", name="Résumé Desk"),
        reply_to=Address(email="help@example.com", name=None),
        subject=f"Your template, {name or 'there'}",
        html="<p>Get it: @@link@@</p>",
        text="Get it: @@link@@\n",
        headers=unsubscribe_headers(f"https://drip.example.com/u/{n}", "leave@example.com"),
        custom_args={"delivery_id": str(n), "sequence": "executive-resume", "step": "one"},
        shared=SharedBody(
            key=("one",),
            html="<p>Get it: @@link@@</p>",
            text="Get it: @@link@@\n",
            substitutions={"@@link@@": f"https://drip.example.com/d/{n}"},
        ),
    )


def by_the_helpers(emails: list[OutgoingEmail]) -> dict[str, Any]:
    """The reference: every part made by the sendgrid helpers."""
    first = emails[0]
    assert first.shared is not None
    mail = Mail(
        from_email=From(first.sender.email, first.sender.name),
        subject=first.subject,
        plain_text_content=first.shared.text,
        html_content=first.shared.html,
    )
    assert first.reply_to is not None
    mail.reply_to = ReplyTo(first.reply_to.email, first.reply_to.name)
    for one in reversed(emails):  # the helpers prepend
        assert one.shared is not None
        recipient = Personalization()
        recipient.add_to(To(one.to_email, one.to_name))
        recipient.subject = one.subject
        for header, value in one.headers.items():
            recipient.add_header(Header(header, value))
        for token, value in one.shared.substitutions.items():
            recipient.add_substitution(Substitution(token, value))
        for key, value in one.custom_args.items():
            recipient.add_custom_arg(CustomArg(key, value))
        mail.add_personalization(recipient)
    payload: dict[str, Any] = mail.get()
    return payload


def test_the_group_payload_is_the_one_the_helpers_build() -> None:
    emails = [
        email(1, name="Ann"),
        email(2, name=None),
        email(3, name="Zoë, O'Brien"),
        email(4, name=""),
    ]

    assert build_group_payload(emails) == by_the_helpers(emails)


def test_each_recipient_keeps_its_own_links_and_ids_in_order() -> None:
    emails = [email(n, name=f"Reader {n}") for n in range(50)]

    people = build_group_payload(emails)["personalizations"]

    assert [p["to"] for p in people] == [
        [{"name": f"Reader {n}", "email": f"reader{n}@example.com"}] for n in range(50)
    ]
    assert [p["substitutions"]["@@link@@"] for p in people] == [
        f"https://drip.example.com/d/{n}" for n in range(50)
    ]
    assert [p["custom_args"]["delivery_id"] for p in people] == [str(n) for n in range(50)]
