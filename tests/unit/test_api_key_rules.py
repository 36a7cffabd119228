"""API keys, scopes and attributes, without services: the key's shape and hash, scope
parsing, and how attributes are checked and merged."""

from __future__ import annotations

import hashlib

import pytest

from drip.contacts.attributes import (
    MAX_ATTRIBUTES_BYTES,
    AttributesTooLarge,
    check_changes,
    merge_attributes,
)
from drip.keys.scopes import parse_scopes
from drip.keys.tokens import KEY_PATTERN, digest_key, draw_key, key_matches, prefix_of


def test_a_key_is_drip_a_prefix_and_256_random_bits_and_only_its_sha256_is_kept() -> None:
    key = draw_key()
    assert KEY_PATTERN.fullmatch(key.token)
    assert key.token.startswith(f"drip_{key.prefix}_")
    assert key.digest == hashlib.sha256(key.token.encode()).hexdigest()
    assert key.token not in key.digest
    assert len({draw_key().token for _ in range(50)}) == 50


def test_a_key_matches_only_its_own_digest() -> None:
    key, other = draw_key(), draw_key()
    assert key_matches(key.token, key.digest)
    assert not key_matches(other.token, key.digest)
    assert not key_matches(key.token[:-1], key.digest)
    assert digest_key(key.token) == key.digest


@pytest.mark.parametrize(
    "token", ["", "drip_", "drip_abc_def", "Bearer drip_x", "drip_0123abcd_short", "x" * 500]
)
def test_a_malformed_key_has_no_prefix(token: str) -> None:
    assert prefix_of(token) is None


def test_scopes_are_parsed_in_a_fixed_order_and_unknown_ones_are_named() -> None:
    assert parse_scopes("contacts:read, events:write,events:write") == [
        "events:write",
        "contacts:read",
    ]
    with pytest.raises(ValueError, match="'events:delete'"):
        parse_scopes("events:write,events:delete")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes(" , ")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Target_Role": "CFO"}, "must match"),
        ({"1st": "x"}, "must match"),
        ({"a" * 41: "x"}, "must match"),
        ({"notes": ["a", "b"]}, "a string, a number"),
        ({"notes": {"a": 1}}, "a string, a number"),
        ({"notes": "x" * 1001}, "at most 1000"),
        ({"notes": "a\x00b"}, "NUL"),
        ({"score": float("nan")}, "finite"),
        ({"score": 2**63}, "too large"),
    ],
)
def test_bad_attributes_are_refused_naming_the_attribute(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_changes(changes)


def test_a_merge_sets_and_deletes_and_leaves_the_original_alone() -> None:
    current = {"target_role": "CFO", "years_experience": 12}
    merged = merge_attributes(current, {"years_experience": None, "downloaded": True})
    assert merged == {"target_role": "CFO", "downloaded": True}
    assert current == {"target_role": "CFO", "years_experience": 12}
    assert check_changes({"ok": None, "n": 1.5, "b": False}) == {"ok": None, "n": 1.5, "b": False}


def test_a_merge_that_grows_too_large_is_refused() -> None:
    big = {f"k{n}": "x" * 1000 for n in range(MAX_ATTRIBUTES_BYTES // 1000 + 1)}
    with pytest.raises(AttributesTooLarge):
        merge_attributes({}, big)
