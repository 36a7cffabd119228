"""One email ready for a transport, as the transport and batch tests send it."""

from __future__ import annotations

from drip.send.message import OutgoingEmail, unsubscribe_headers
from drip.sequences.definition import Address


def outgoing_email(delivery_id: int) -> OutgoingEmail:
    """The executive-resume template's email to reader{delivery_id}@example.com, named by
    its delivery id, with its own unsubscribe headers."""
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
