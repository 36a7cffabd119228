"""Bearer tokens for the operators' endpoints (`/metrics`, `/admin`): read from a header only.

A token is never taken from the query string: URLs end up in access logs, browser history
and `Referer` headers. Comparison is constant-time.
"""

from __future__ import annotations

import secrets

from fastapi import Request


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" when there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def token_matches(given: str, expected: str) -> bool:
    """Whether `given` is `expected`, compared in constant time; an empty `given` never is."""
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())
