"""Write each email as an RFC 5322 `.eml` file (multipart/alternative) into a folder.

A file is named after its delivery id and written atomically, so sending the same
delivery twice leaves one file: the outbox is idempotent the way a provider is not.
"""

from __future__ import annotations

import os
import uuid
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from drip.db import utcnow
from drip.send.message import OutgoingEmail

#: RFC 5322's line limit. The default 78 would fold, then RFC 2047-encode, a long
#: List-Unsubscribe URL, and mail clients would no longer recognise it.
MIME_POLICY = policy.default.clone(max_line_length=998)


def to_mime(email: OutgoingEmail, *, message_id: str) -> EmailMessage:
    """The MIME message for `email`, with a text and an HTML alternative."""
    message = EmailMessage(policy=MIME_POLICY)
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(utcnow())
    message["From"] = formataddr((email.sender.name or "", email.sender.email))
    message["To"] = formataddr((email.to_name or "", email.to_email))
    if email.reply_to:
        message["Reply-To"] = formataddr((email.reply_to.name or "", email.reply_to.email))
    message["Subject"] = email.subject
    for name, value in email.headers.items():
        message[name] = value
    for name, value in email.custom_args.items():
        message[f"X-Drip-{name.replace('_', '-').title()}"] = value
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class OutboxTransport:
    """Writes each email as an .eml file: the embedded default, nothing leaves the machine."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, email: OutgoingEmail) -> str:
        """Write `email` to the outbox folder; return its file's name as the message id."""
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = make_msgid(domain="drip.local")
        name = (
            f"delivery-{email.delivery_id}" if email.delivery_id else f"message-{uuid.uuid4().hex}"
        )
        target = self.directory / f"{name}.eml"
        partial = self.directory / f".{name}.{uuid.uuid4().hex}.tmp"
        partial.write_bytes(bytes(to_mime(email, message_id=message_id)))
        os.replace(partial, target)
        return message_id.strip("<>")

    def close(self) -> None:
        """Nothing to close."""
        pass
