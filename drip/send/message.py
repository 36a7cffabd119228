"""The message a transport sends: rendered parts plus the headers every email carries.

`custom_args` carry only ids (`delivery_id`, `sequence`, `step`), never personal data,
so provider events map back to rows without exposing subscribers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drip.render.renderer import RenderedEmail, clean_header
from drip.render.reuse import SharedBody
from drip.sequences.definition import Address


@dataclass(frozen=True)
class OutgoingEmail:
    """An email ready for a transport: the rendered parts, addresses, headers and custom args."""

    to_email: str
    to_name: str | None
    sender: Address
    reply_to: Address | None
    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    custom_args: dict[str, str] = field(default_factory=dict)
    #: The body as emails of the same input share it, when the renderer reused it.
    shared: SharedBody | None = field(default=None, compare=False)

    @property
    def delivery_id(self) -> str | None:
        """The drip delivery this email is, from its custom args."""
        return self.custom_args.get("delivery_id")


def unsubscribe_headers(unsubscribe_url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 8058 one-click headers: one https URL (plus a mailto when configured)."""
    targets = [f"<{unsubscribe_url}>"] + (
        [f"<mailto:{mailto}?subject=unsubscribe>"] if mailto else []
    )
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def build_email(
    rendered: RenderedEmail,
    *,
    to_email: str,
    to_name: str | None,
    sender: Address,
    reply_to: Address | None,
    unsubscribe_url: str,
    unsubscribe_mailto: str | None = None,
    custom_args: dict[str, str],
) -> OutgoingEmail:
    """The email for one rendered delivery, with its unsubscribe headers and ids."""
    return OutgoingEmail(
        to_email=to_email,
        to_name=clean_header(to_name) if to_name else None,
        sender=sender,
        reply_to=reply_to,
        subject=clean_header(rendered.subject),
        html=rendered.html,
        text=rendered.text,
        headers=unsubscribe_headers(unsubscribe_url, unsubscribe_mailto),
        custom_args=custom_args,
        shared=rendered.shared,
    )
