"""Composing one email: the one path from a step and a contact to the message the provider
gets, for the worker and for everything that shows an email as the worker would send it
(previews, the studio, `validate`'s inbox checks, test sends).

The contact's unsubscribe URL (and the footer's form of it), the step's per-contact links,
`Renderer.render` with the sequence's UTM tags and, when the sequence tracks clicks and a
delivery is named, its tracked links, then `build_email` with the unsubscribe headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from drip.render.renderer import RenderedEmail, TemplateContact
from drip.render.renderer import Renderer as TemplateRenderer
from drip.send.message import OutgoingEmail, build_email
from drip.sequences.definition import Sequence, Step
from drip.unsubscribe.links import Links


@dataclass(frozen=True)
class Composed:
    """A rendered email, the message built from it, the footer's unsubscribe link and the
    per-contact links of its step."""

    rendered: RenderedEmail
    message: OutgoingEmail
    footer_url: str
    step_links: dict[str, str]


def compose(
    renderer: TemplateRenderer,
    links: Links,
    sequence: Sequence,
    step: Step,
    contact: TemplateContact,
    *,
    public_id: str,
    to_email: str,
    custom_args: dict[str, str],
    tracked_delivery: int | None = None,
) -> Composed:
    """`step` for `contact` as the worker sends it; raise RenderError naming the template
    and the problem. Links are tracked only for a named delivery of a tracking sequence."""
    unsubscribe_url = links.unsubscribe_url(public_id)
    footer_url = links.footer_unsubscribe_url(unsubscribe_url, sequence.id)
    step_links = links.for_contact(public_id, sequence, step.id)
    track = (
        links.click_maker(tracked_delivery)
        if tracked_delivery is not None and sequence.track_clicks
        else None
    )
    rendered = renderer.render(
        sequence,
        step,
        contact,
        unsubscribe_url=footer_url,
        links=step_links,
        own_url=links.base_url,
        track=track,
    )
    message = build_email(
        rendered,
        to_email=to_email,
        to_name=contact.first_name,
        sender=sequence.from_,
        reply_to=sequence.reply_to,
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=links.unsubscribe_mailto,
        custom_args=custom_args,
    )
    return Composed(rendered, message, footer_url, step_links)
