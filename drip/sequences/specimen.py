"""One email as the worker would send it, for a sample contact: what previews show and checks read.

`compose_specimen` composes through the worker's own function (`drip.send.compose`): the
contact's unsubscribe URL, the footer's form of it, the per-contact links of the step,
`Renderer.render` with the UTM tags, then `build_email` with the unsubscribe headers. Only
the inputs differ (links are shown as their destinations, not tracked):
a stand-in public id instead of a contact's, and links signed with whatever key the caller
gives (a preview signs with a throwaway key, so its links open nothing). The studio, the
preview, `validate`'s inbox checks and the test send all render through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drip.errors import RenderError
from drip.render.checks import Finding, inbox_findings
from drip.render.renderer import RenderedEmail, Renderer, TemplateContact
from drip.send.compose import compose
from drip.send.message import OutgoingEmail
from drip.sequences.definition import Sequence, Step
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner

#: The public id a specimen's links are signed for (no contact has it).
SPECIMEN_PUBLIC_ID = "sample"

#: Links for specimens that are looked at, not sent: a throwaway key, an https base.
SAMPLE_LINKS = Links(signer=TokenSigner("sample-only"), base_url="https://example.com")


@dataclass(frozen=True)
class Specimen:
    """A rendered email, the message built from it, and the links drip put in it."""

    rendered: RenderedEmail
    message: OutgoingEmail
    #: The footer's unsubscribe link, as the HTML and text parts carry it.
    unsubscribe_url: str
    #: Every link drip adds (unsubscribe, download, confirm): not the template's own.
    own_links: frozenset[str]

    def findings(self, step: Step, *, postal_address: str) -> list[Finding]:
        """The inbox checks (`drip.render.checks.inbox_findings`) on this email."""
        return inbox_findings(
            self.rendered,
            preheader=step.preheader,
            unsubscribe_url=self.unsubscribe_url,
            postal_address=postal_address,
            own_links=self.own_links,
        )


def compose_specimen(
    renderer: Renderer,
    sequence: Sequence,
    step: Step,
    contact: TemplateContact,
    *,
    links: Links = SAMPLE_LINKS,
    public_id: str = SPECIMEN_PUBLIC_ID,
    to_email: str | None = None,
    custom_args: dict[str, str] | None = None,
) -> Specimen:
    """`step` rendered for `contact` as the worker renders it; raise RenderError naming the
    template and the problem."""
    composed = compose(
        renderer,
        links,
        sequence,
        step,
        contact,
        public_id=public_id,
        to_email=to_email or contact.email,
        custom_args=custom_args or {"sequence": sequence.id, "step": step.id},
    )
    return Specimen(
        composed.rendered,
        composed.message,
        composed.footer_url,
        frozenset({composed.footer_url, *composed.step_links.values()}),
    )


def subject_for(
    renderer: Renderer, sequence: Sequence, contact: TemplateContact
) -> Callable[[Step], str]:
    """The subject each step renders to for `contact` (the subject's source when the step
    does not render): what `simulate` and the studio's timeline print beside each time."""

    def subject(step: Step) -> str:
        try:
            return compose_specimen(renderer, sequence, step, contact).rendered.subject
        except RenderError:
            return step.subject

    return subject
