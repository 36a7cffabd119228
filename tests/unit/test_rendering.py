"""Rendering: contact data escaped, undefined variables named, both parts, headers clean."""

from pathlib import Path

import pytest

from drip.errors import RenderError, SequenceError
from drip.render.renderer import Renderer, TemplateContact
from drip.sequences.catalog import SequenceCatalog, sample_links

UNSUBSCRIBE = "https://drip.test/unsubscribe/t0ken"


@pytest.fixture
def catalog(sequences_dir: Path) -> SequenceCatalog:
    return SequenceCatalog.load(sequences_dir, postal_address="1 Example Street, Springfield")


def render(catalog: SequenceCatalog, contact: TemplateContact, step: int = 0, renderer=None):  # type: ignore[no-untyped-def]
    sequence = catalog.get("quick").definition
    return (renderer or catalog.renderer).render(
        sequence,
        sequence.steps[step],
        contact,
        unsubscribe_url=UNSUBSCRIBE,
        links=sample_links(sequence),
    )


def test_contact_data_is_escaped_in_html_and_plain_in_text(catalog: SequenceCatalog) -> None:
    email = render(catalog, TemplateContact(email="a@example.com", first_name="<b>Al</b> & Co"))
    assert "Hello &lt;b&gt;Al&lt;/b&gt; &amp; Co" in email.html
    assert "<b>Al</b>" not in email.html
    assert "Hello <b>Al</b> & Co" in email.text or "Hello Al & Co" in email.text


def test_the_footer_carries_the_unsubscribe_link_and_postal_address_in_both_parts(
    catalog: SequenceCatalog,
) -> None:
    email = render(catalog, TemplateContact(email="a@example.com"))
    assert f'href="{UNSUBSCRIBE}"' in email.html
    assert "1 Example Street, Springfield" in email.html
    assert email.text.endswith(f"Unsubscribe: {UNSUBSCRIBE}\n1 Example Street, Springfield\n")


def test_css_is_inlined(catalog: SequenceCatalog) -> None:
    email = render(catalog, TemplateContact(email="a@example.com"))
    assert '<p style="color: #333333;">' in email.html


def test_a_text_template_beside_the_html_is_used_for_the_text_part(
    sequences_dir: Path,
) -> None:
    text_template = sequences_dir / "templates" / "quick" / "second.txt"
    text_template.write_text("The plain second email, {{ contact.email }}.")
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    email = render(catalog, TemplateContact(email="a@example.com"), step=1)
    assert email.text.startswith("The plain second email, a@example.com.\n")


def test_templates_edited_after_loading_are_not_sent_until_checked_again(
    catalog: SequenceCatalog,
) -> None:
    # Given a catalog loaded and checked, then a template edited into one that cannot render
    before = render(catalog, TemplateContact(email="a@example.com"))
    template = catalog.renderer.templates_dir / "quick" / "welcome.html"
    template.write_text("{{ contact.no_such_field }}")
    (template.parent / "welcome.txt").write_text("unchecked text")
    # Then the worker keeps sending what it checked, the text part too
    assert render(catalog, TemplateContact(email="a@example.com")) == before
    # And a new load sees (and refuses) the edit
    with pytest.raises(SequenceError, match="no_such_field"):
        SequenceCatalog.load(catalog.renderer.templates_dir.parent, postal_address="1 Example St")


def unchecked(catalog: SequenceCatalog) -> Renderer:
    """A renderer reading the templates as they are now, past the catalog's load checks."""
    return Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street")


def test_an_undefined_variable_is_named_in_the_error(catalog: SequenceCatalog) -> None:
    (catalog.renderer.templates_dir / "quick" / "third.html").write_text("{{ contact.company }}")
    with pytest.raises(RenderError, match="company"):
        render(catalog, TemplateContact(email="a@example.com"), 2, unchecked(catalog))


def test_the_sandbox_refuses_python_internals_at_render_time(catalog: SequenceCatalog) -> None:
    (catalog.renderer.templates_dir / "quick" / "third.html").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    with pytest.raises(RenderError):
        render(catalog, TemplateContact(email="a@example.com"), 2, unchecked(catalog))


def test_line_breaks_in_a_name_never_reach_the_subject(catalog: SequenceCatalog) -> None:
    email = render(
        catalog, TemplateContact(email="a@example.com", first_name="Eve\r\nBcc: x@evil.test")
    )
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert email.subject == "Welcome, Eve Bcc: x@evil.test"
