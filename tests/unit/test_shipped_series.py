"""Every email of every shipped sequence carries a working unsubscribe link and the postal
address, in its HTML and its text part. Checked here on its own, not through the catalog's
checks, so that a broken layout and a broken check cannot hide each other."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from drip.render.renderer import Renderer, TemplateContact
from drip.sequences.catalog import sample_links
from drip.sequences.definition import Sequence, Step
from drip.sequences.loader import TEMPLATES_SUBDIR, parse_sequence_file, sequence_files
from tests.conftest import REPO

SHIPPED = REPO / "sequences"

UNSUBSCRIBE = "https://drip.test/unsubscribe/t0ken-for-this-contact"
POSTAL_ADDRESS = "The Resume Studio, 100 Example Street, Springfield, USA"
CONTACTS = (
    TemplateContact(email="ann@example.com", first_name="Ann", timezone="Europe/London"),
    TemplateContact(email="someone@example.com"),
)


class Footer(HTMLParser):
    """The `<a href>` targets of a page and its text outside comments, scripts and styles."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.words: list[str] = []
        self._skip = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "title"):
            self._skip += 1
        if tag == "a":
            self.hrefs += [value or "" for name, value in attrs if name == "href"]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.words += data.split()


def shipped_emails() -> list[tuple[str, Sequence, Step]]:
    """Every email the shipped sequences can send: each step, and the confirmation. Read
    without the catalog's template checks, so a broken layout fails the test below."""
    return [
        (f"{parsed.sequence.id}/{step.id}", parsed.sequence, step)
        for parsed in map(parse_sequence_file, sequence_files([SHIPPED]))
        for step in (*parsed.sequence.steps, parsed.sequence.confirmation_step())
    ]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SHIPPED / TEMPLATES_SUBDIR, postal_address=POSTAL_ADDRESS)


def test_the_shipped_series_have_their_steps_and_confirmations() -> None:
    # The resume series: ten emails a reader gets, step 2 in two variants, a confirmation;
    # client onboarding: three emails and a confirmation.
    names = [name for name, _, _ in shipped_emails()]
    assert len([n for n in names if n.startswith("executive-resume/")]) == 12
    assert len([n for n in names if n.startswith("client-onboarding/")]) == 4


@pytest.mark.parametrize(("name", "sequence", "step"), shipped_emails())
def test_each_shipped_email_carries_a_working_unsubscribe_link_and_the_postal_address(
    renderer: Renderer, name: str, sequence: Sequence, step: Step
) -> None:
    for contact in CONTACTS:
        email = renderer.render(
            sequence,
            step,
            contact,
            unsubscribe_url=UNSUBSCRIBE,
            links=sample_links(sequence, step),
        )
        page = Footer(email.html)
        assert UNSUBSCRIBE in page.hrefs, f"{name}: no <a href> to the unsubscribe URL"
        assert POSTAL_ADDRESS in " ".join(page.words), f"{name}: no postal address in the HTML"
        assert UNSUBSCRIBE in email.text, f"{name}: no unsubscribe URL in the text part"
        assert POSTAL_ADDRESS in " ".join(email.text.split()), f"{name}: no postal address (text)"
