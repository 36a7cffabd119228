"""Outbound links: UTM tags added once, queries and fragments kept, other links left alone;
tracked-link tokens name their delivery, link and URL, and nothing else opens them."""

from __future__ import annotations

import pytest

from drip.errors import BadToken
from drip.render.tracking import add_utm, is_outbound, rewrite_links
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner

UTM = {"utm_source": "drip", "utm_medium": "email", "utm_content": "welcome"}
TAGS = "utm_source=drip&utm_medium=email&utm_content=welcome"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/guide", f"https://example.org/guide?{TAGS}"),
        ("https://example.org/s?q=cv&page=2", f"https://example.org/s?q=cv&page=2&{TAGS}"),
        ("https://example.org/a#part", f"https://example.org/a?{TAGS}#part"),
        ("https://example.org/s?q=a%20b#top", f"https://example.org/s?q=a%20b&{TAGS}#top"),
        ("http://example.org/?q=1&", f"http://example.org/?q=1&{TAGS}"),
        ("https://example.org/p?utm_source=own", "https://example.org/p?utm_source=own"),
        (
            "https://example.org/p?x=1&UTM_Campaign=own#f",
            "https://example.org/p?x=1&UTM_Campaign=own#f",
        ),
    ],
)
def test_utm_tags_are_appended_once_keeping_the_query_and_fragment(url: str, expected: str) -> None:
    assert add_utm(url, UTM) == expected
    assert add_utm(expected, UTM) == expected  # never doubled


def test_utm_values_are_encoded() -> None:
    assert add_utm("https://e.org/", {"utm_campaign": "spring sale & more"}) == (
        "https://e.org/?utm_campaign=spring+sale+%26+more"
    )


@pytest.mark.parametrize(
    "href",
    ["mailto:coach@example.com", "/relative/page", "#anchor", "tel:+15551234", "ftp://e.org/f"],
)
def test_links_that_are_not_absolute_http_are_left_alone(href: str) -> None:
    html = f'<p><a href="{href}">x</a></p>'
    out = rewrite_links(html, f"see {href}\n", utm=UTM, track=lambda i, t: f"T{i}", keep=())
    assert out.html == html
    assert out.targets == ()


def test_rewrite_tags_then_tracks_in_document_order_and_the_text_part_follows() -> None:
    html = (
        "<a href=\"https://example.org/a\">a</a> <A HREF='https://example.org/b?x=1&amp;y=2'>b</A>"
        ' <a class="c" href="https://drip.example.com/unsubscribe/tok">u</a>'
        ' <a href="https://example.org/a">a again</a>'
    )
    text = "a: https://example.org/a. b: https://example.org/b?x=1&y=2\nu: https://drip.example.com/unsubscribe/tok\n"
    made: list[tuple[int, str]] = []

    def track(index: int, target: str) -> str:
        made.append((index, target))
        return f"https://drip.example.com/l/T{index}"

    out = rewrite_links(html, text, utm=UTM, track=track, keep=["https://drip.example.com/"])
    assert out.targets == (
        f"https://example.org/a?{TAGS}",
        f"https://example.org/b?x=1&y=2&{TAGS}",
        f"https://example.org/a?{TAGS}",
    )
    assert made == list(enumerate(out.targets))
    assert out.html == (
        "<a href=\"https://drip.example.com/l/T0\">a</a> <A HREF='https://drip.example.com/l/T1'>b</A>"
        ' <a class="c" href="https://drip.example.com/unsubscribe/tok">u</a>'
        ' <a href="https://drip.example.com/l/T2">a again</a>'
    )
    assert out.text == (
        "a: https://drip.example.com/l/T0. b: https://drip.example.com/l/T1\n"
        "u: https://drip.example.com/unsubscribe/tok\n"
    )


def test_utm_alone_tags_both_parts_and_escapes_the_html() -> None:
    html = '<a href="https://example.org/s?q=1&amp;r=2">s</a>'
    out = rewrite_links(html, "https://example.org/s?q=1&r=2\n", utm=UTM, track=None)
    assert (
        out.html
        == f'<a href="https://example.org/s?q=1&amp;r=2&amp;{TAGS.replace("&", "&amp;")}">s</a>'
    )
    assert out.text == f"https://example.org/s?q=1&r=2&{TAGS}\n"
    assert out.targets == ()


def test_kept_links_and_prefixes_are_not_outbound() -> None:
    keep = ["https://drip.example.com/", "https://cdn.example.com/download/abc"]
    assert not is_outbound("https://drip.example.com/download/x/y", keep=keep)
    assert not is_outbound("https://cdn.example.com/download/abc?sequence=s", keep=keep)
    assert is_outbound("https://example.org/", keep=keep)


SIGNER = TokenSigner("current", fallbacks=["older"])
LINKS = Links(signer=SIGNER, base_url="https://drip.example.com/")


def test_a_click_token_names_the_delivery_the_link_and_its_url() -> None:
    url = LINKS.click_url(42, 3, "https://example.org/a?utm_source=drip")
    assert url.startswith("https://drip.example.com/l/")
    claim = SIGNER.read_click(url.rsplit("/", 1)[1])
    assert (claim.delivery_id, claim.link_index, claim.url) == (
        42,
        3,
        "https://example.org/a?utm_source=drip",
    )


def test_click_tokens_survive_a_key_rotation_and_refuse_everything_else() -> None:
    old = TokenSigner("older").sign_click(7, 0, "https://example.org/")
    assert SIGNER.read_click(old).delivery_id == 7
    with pytest.raises(BadToken):
        TokenSigner("someone-else").read_click(SIGNER.sign_click(7, 0, "https://example.org/"))
    token = SIGNER.sign_click(7, 0, "https://example.org/")
    with pytest.raises(BadToken):
        SIGNER.read_click(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    # a token of another purpose, even ours, opens no redirect
    with pytest.raises(BadToken):
        SIGNER.read_click(SIGNER.sign("public-id"))
    with pytest.raises(BadToken):
        SIGNER.read_click(SIGNER.sign_download("public-id", "seq"))
