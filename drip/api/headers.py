"""Security headers on every response, set in one place for every router.

Every response gets `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`
(the unsubscribe, confirmation and download pages carry a token in their URL, which a
`Referer` would hand to any site they link to). Every HTML page also gets a
Content-Security-Policy that allows no script at all and no framing; pages rendered by
`drip.api.pages.page` set their own policy with a nonce for their inline stylesheet, and
anything else HTML gets `STRICT_POLICY`. HTML pages other than the signup page are not
stored by browsers or proxies (`Cache-Control: no-store`): they show personal data or sit
at a URL that holds a token.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The policy of an HTML response that did not set one: nothing may load, run or frame it.
STRICT_POLICY = "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

#: The policy of a page served outside drip's own templates (the development API docs).
FRAMING_ONLY_POLICY = "frame-ancestors 'none'"

#: Pages that may be stored: they show nothing personal and hold no token.
CACHEABLE_PAGES = frozenset({"/"})


def page_policy(nonce: str) -> str:
    """The policy of a drip page whose one inline stylesheet carries `nonce`; no script."""
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """ASGI middleware adding the headers above to each response that lacks them."""

    def __init__(self, app: ASGIApp, *, framing_only: Collection[str] = ()) -> None:
        self.app = app
        self.framing_only = frozenset(framing_only)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through; add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if headers.get("content-type", "").startswith("text/html"):
                    policy = FRAMING_ONLY_POLICY if path in self.framing_only else STRICT_POLICY
                    headers.setdefault("Content-Security-Policy", policy)
                    headers.setdefault("X-Frame-Options", "DENY")
                    if path not in CACHEABLE_PAGES:
                        headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
