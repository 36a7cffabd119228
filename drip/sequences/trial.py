"""Test sends: one step's email, `[TEST]` in its subject, to a marketer's own address.

`drip sequences test-send` and the studio's test-send button build the message here and
hand it to the configured transport; no contact, enrollment or delivery is read or
written. The studio sends only to the addresses of `DRIP_TEST_RECIPIENTS`
(`allowed_recipient`): a page on the marketer's machine must not become a way to mail
anyone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from drip.contacts.identity import normalize_email
from drip.errors import DripError
from drip.render.renderer import Renderer, TemplateContact
from drip.send.message import OutgoingEmail
from drip.sequences.definition import Sequence, Step
from drip.sequences.specimen import compose_specimen
from drip.unsubscribe.links import Links

#: The public id a test send's links are signed for (no contact has it).
TEST_PUBLIC_ID = "test-send"


class RecipientRefused(DripError):
    """A test send to an address that is not one of the allowed test recipients."""


def allowed_recipient(address: str, allowed: Iterable[str]) -> str:
    """`address` normalised, when it is one of `allowed`; raise RecipientRefused otherwise."""
    permitted = {normalize_email(a) for a in allowed}
    if not permitted:
        raise RecipientRefused(
            "test sends are off: set DRIP_TEST_RECIPIENTS to the addresses that may get them"
            " (comma-separated)"
        )
    try:
        normalized = normalize_email(address)
    except ValueError as exc:
        raise RecipientRefused(f"{address!r} is not an email address: {exc}") from exc
    if normalized not in permitted:
        raise RecipientRefused(
            f"{normalized} is not in DRIP_TEST_RECIPIENTS ({', '.join(sorted(permitted))})"
        )
    return normalized


def compose_test_message(
    renderer: Renderer,
    sequence: Sequence,
    step: Step,
    contact: TemplateContact,
    *,
    links: Links,
    to: str,
) -> OutgoingEmail:
    """`step` rendered for `contact` as the worker renders it, addressed to `to`, with a
    `[TEST]` subject and `test: true` among its ids."""
    specimen = compose_specimen(
        renderer,
        sequence,
        step,
        contact,
        links=links,
        public_id=TEST_PUBLIC_ID,
        to_email=to,
        custom_args={"sequence": sequence.id, "step": step.id, "test": "true"},
    )
    return replace(specimen.message, subject=f"[TEST] {specimen.message.subject}")
