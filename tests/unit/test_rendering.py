"""Rendering: contact data escaped, undefined variables named, both parts, headers clean."""

from pathlib import Path

import pytest

from drip.errors import RenderError
from drip.render.renderer import TemplateContact
from drip.sequences.catalog import SequenceCatalog, sample_links

UNSUBSCRIBE = "https://drip.test/unsubscribe/t0ken"


@pytest.fixture
def catalog(sequences_dir: Path) -> SequenceCatalog:
    return SequenceCatalog.load(sequences_dir, postal_address="1 Example Street, Springfield")


def render(catalog: SequenceCatalog, contact: TemplateContact, step: int = 0):  # type: ignore[no-untyped-def]
    sequence = catalog.get("quick").definition
    return catalog.renderer.render(
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
    catalog: SequenceCatalog,
) -> None:
    text_template = catalog.renderer.templates_dir / "quick" / "second.txt"
    text_template.write_text("The plain second email, {{ contact.email }}.")
    email = render(catalog, TemplateContact(email="a@example.com"), step=1)
    assert email.text.startswith("The plain second email, a@example.com.\n")


def test_an_undefined_variable_is_named_in_the_error(catalog: SequenceCatalog) -> None:
    (catalog.renderer.templates_dir / "quick" / "third.html").write_text("{{ contact.company }}")
    with pytest.raises(RenderError, match="company"):
        render(catalog, TemplateContact(email="a@example.com"), step=2)


def test_the_sandbox_refuses_python_internals_at_render_time(catalog: SequenceCatalog) -> None:
    (catalog.renderer.templates_dir / "quick" / "third.html").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    with pytest.raises(RenderError):
        render(catalog, TemplateContact(email="a@example.com"), step=2)


def test_line_breaks_in_a_name_never_reach_the_subject(catalog: SequenceCatalog) -> None:
    email = render(
        catalog, TemplateContact(email="a@example.com", first_name="Eve\r\nBcc: x@evil.test")
    )
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert email.subject == "Welcome, Eve Bcc: x@evil.test"
