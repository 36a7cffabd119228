"""Every email of every shipped sequence carries a working unsubscribe link and the postal
address, in its HTML and its text part. Checked here on its own, not through the catalog's
checks, so that a broken layout and a broken check cannot hide each other."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from drip.render.renderer import TemplateContact
from drip.sequences.catalog import SequenceCatalog, sample_links
from drip.sequences.definition import Sequence, Step
from tests.conftest import REPO

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
    """Every email the shipped sequences can send: each step, and the confirmation."""
    catalog = SequenceCatalog.load(REPO / "sequences", postal_address=POSTAL_ADDRESS)
    return [
        (f"{loaded.definition.id}/{step.id}", loaded.definition, step)
        for loaded in catalog
        for step in (*loaded.definition.steps, loaded.definition.confirmation_step())
    ]


@pytest.fixture(scope="module")
def catalog() -> SequenceCatalog:
    return SequenceCatalog.load(REPO / "sequences", postal_address=POSTAL_ADDRESS)


def test_the_shipped_series_has_ten_steps_and_a_confirmation(catalog: SequenceCatalog) -> None:
    assert len(shipped_emails()) == 11


@pytest.mark.parametrize(("name", "sequence", "step"), shipped_emails())
def test_each_shipped_email_carries_a_working_unsubscribe_link_and_the_postal_address(
    catalog: SequenceCatalog, name: str, sequence: Sequence, step: Step
) -> None:
    for contact in CONTACTS:
        email = catalog.renderer.render(
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
