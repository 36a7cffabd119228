"""Signed per-contact tokens for links in emails.

A token is the contact's random `public_id` signed with the secret key and a purpose
salt (itsdangerous). It never expires: an unsubscribe link in a years-old email must
still work. It reveals nothing but an opaque id, and a token made for one purpose
(download) is refused for another (unsubscribe).
"""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, URLSafeSerializer

from drip.errors import BadToken


class Purpose(StrEnum):
    UNSUBSCRIBE = "drip.unsubscribe"
    DOWNLOAD = "drip.download"
    CONFIRM = "drip.confirm"


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        self._serializers = {p: URLSafeSerializer(secret_key, salt=p.value) for p in Purpose}

    def sign(self, public_id: str, purpose: Purpose = Purpose.UNSUBSCRIBE) -> str:
        """A token for the contact with `public_id`."""
        return str(self._serializers[purpose].dumps(public_id))

    def read(self, token: str, purpose: Purpose = Purpose.UNSUBSCRIBE) -> str:
        """The `public_id` inside `token`; raise BadToken if it was not made by us for `purpose`."""
        try:
            value = self._serializers[purpose].loads(token)
        except BadSignature as exc:
            raise BadToken("the link is not valid") from exc
        if not isinstance(value, str):
            raise BadToken("the link is not valid")
        return value
