"""The format of an API key, and the only form of it drip keeps.

A key reads `drip_<prefix>_<secret>`: the prefix (8 hex characters) finds its row and is
shown by `drip keys list`; the secret is 256 random bits from `secrets`. The database keeps
the SHA-256 of the whole key. A plain, unsalted hash is the right tool here: a password
needs a slow salted hash because people pick guessable ones, but nothing can guess 256
random bits, and a fast hash keeps every request cheap. Hashes are compared with
`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

#: What every key starts with, so a leaked one is recognisable (secret scanners, logs).
KEY_PREFIX = "drip_"
#: Random bytes in the secret part: 256 bits.
SECRET_BYTES = 32
#: The shape of a key: `drip_`, 8 hex characters, `_`, the url-safe secret.
KEY_PATTERN = re.compile(r"drip_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class NewKey:
    """A freshly drawn key: `token` is shown once, `prefix` and `digest` are stored."""

    token: str
    prefix: str
    digest: str


def draw_key() -> NewKey:
    """A new random key."""
    prefix = secrets.token_hex(4)
    token = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewKey(token=token, prefix=prefix, digest=digest_key(token))


def digest_key(token: str) -> str:
    """The SHA-256 hex digest of a whole key: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def prefix_of(token: str) -> str | None:
    """The prefix of a well-formed key, or None for anything else."""
    match = KEY_PATTERN.fullmatch(token)
    return match.group(1) if match else None


def key_matches(token: str, digest: str) -> bool:
    """Whether `token` is the key `digest` was made from (constant-time comparison)."""
    return hmac.compare_digest(digest_key(token), digest)
