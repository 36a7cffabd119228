"""Signed tokens for the links in emails: unsubscribe, download, confirm.

Every token is signed with the secret key and a salt per purpose (itsdangerous), so a
token made for one purpose is refused for another, and reveals nothing but the contact's
random `public_id` (and, where bound, a sequence id). The three kinds differ on purpose:

- unsubscribe: the `public_id` alone, and it never expires: an unsubscribe link in a
  years-old email must still work.
- download: `[public_id, sequence_id]`, never expires (the subscriber asked for the file),
  and opens only that sequence's file. A link made before downloads were bound carries the
  `public_id` alone; the caller accepts it only for a sequence the contact is enrolled in.
- click: `[delivery_id, link_index, url]` (`drip.render.tracking`), never expires: the
  link of a tracked email redirects only to the URL that email carried at that index.
- confirm: `[public_id, sequence_id]` with the time it was made; it expires after
  `DRIP_CONFIRMATION_TTL`, and the caller refuses one made for an earlier request or
  before the contact's last unsubscribe (`drip.signup.confirm`). A consent is given once.

Key rotation: tokens are signed with `DRIP_SECRET_KEY` and verified with it and with each
key of `DRIP_SECRET_KEY_FALLBACKS`, so links already sent keep working after a rotation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer

from drip.errors import BadToken


class Purpose(StrEnum):
    """What a token opens; each purpose signs with its own salt."""

    UNSUBSCRIBE = "drip.unsubscribe"
    DOWNLOAD = "drip.download"
    CONFIRM = "drip.confirm"
    CLICK = "drip.click"


class ExpiredToken(BadToken):
    """A token we made that is past its lifetime (as opposed to one tampered with)."""


@dataclass(frozen=True)
class ConfirmClaim:
    """What a valid confirmation token says: who, which sequence, and when it was made."""

    public_id: str
    sequence_id: str
    issued_at: datetime


@dataclass(frozen=True)
class DownloadClaim:
    """What a valid download token says; `sequence_id` is None for a link made before
    downloads were bound to a sequence."""

    public_id: str
    sequence_id: str | None


@dataclass(frozen=True)
class ClickClaim:
    """What a valid tracked-link token says: which delivery, which link of it, and where
    that link led."""

    delivery_id: int
    link_index: int
    url: str


class _ClockedSigner(TimestampSigner):
    """itsdangerous' timestamp signer reading the time from the clock the TokenSigner got."""

    def __init__(self, *args: Any, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


#: Payloads (JSON) up to this many bytes go into a token as they are, never compressed.
COMPRESS_OVER = 100


class _LinkSerializer(URLSafeSerializer):
    """itsdangerous' URL-safe serializer, which tries zlib on every payload and keeps the
    result when it is shorter. For a contact's random `public_id` it never is (only a
    repetitive sequence id could make a download token a little shorter), and the attempt
    cost about 40 us per token, most of the worker's CPU for an email's links; payloads
    over `COMPRESS_OVER` bytes (tracked links with their URL) are still offered to zlib.
    Reading is unchanged: `loads` takes a token either way, so every link already sent
    still verifies."""

    def dump_payload(self, obj: Any) -> bytes:
        """`obj` as the token's payload: plain base64 JSON when short, else as itsdangerous
        makes it (compressed when that is shorter)."""
        data = Serializer.dump_payload(self, obj)
        if len(data) <= COMPRESS_OVER:
            return base64_encode(data)
        return super().dump_payload(obj)


class TokenSigner:
    """Makes and reads every kind of link token with the current key and the old ones."""

    def __init__(
        self,
        secret_key: str,
        fallbacks: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # itsdangerous signs with the last key of the list and verifies with all of them.
        keys = [*[k for k in fallbacks if k], secret_key]
        self._plain = {
            p: _LinkSerializer(keys, salt=p.value)
            for p in (Purpose.UNSUBSCRIBE, Purpose.DOWNLOAD, Purpose.CLICK)
        }
        self._confirm = URLSafeTimedSerializer(
            keys,
            salt=Purpose.CONFIRM.value,
            signer=_ClockedSigner,
            signer_kwargs={"clock": clock},
        )

    def sign(self, public_id: str, purpose: Purpose = Purpose.UNSUBSCRIBE) -> str:
        """The unsubscribe token of the contact with `public_id` (the only unbound kind)."""
        if purpose is not Purpose.UNSUBSCRIBE:
            raise ValueError(
                f"{purpose} tokens are bound to a sequence: use sign_{purpose.name.lower()}"
            )
        return str(self._plain[purpose].dumps(public_id))

    def read(self, token: str, purpose: Purpose = Purpose.UNSUBSCRIBE) -> str:
        """The `public_id` inside an unsubscribe token; raise BadToken if we did not make it."""
        if purpose is not Purpose.UNSUBSCRIBE:
            raise ValueError(
                f"{purpose} tokens are bound to a sequence: use read_{purpose.name.lower()}"
            )
        value = self._loads(self._plain[purpose], token)
        if not isinstance(value, str):
            raise BadToken("the link is not valid")
        return value

    def sign_download(self, public_id: str, sequence_id: str) -> str:
        """A token that opens the file of `sequence_id` for the contact with `public_id`."""
        return str(self._plain[Purpose.DOWNLOAD].dumps([public_id, sequence_id]))

    def read_download(self, token: str) -> DownloadClaim:
        """Who and which sequence a download token names; raise BadToken if we did not make it."""
        value = self._loads(self._plain[Purpose.DOWNLOAD], token)
        if isinstance(value, str):
            return DownloadClaim(value, None)
        public_id, sequence_id = _pair(value)
        return DownloadClaim(public_id, sequence_id)

    def sign_click(self, delivery_id: int, link_index: int, url: str) -> str:
        """A token for link `link_index` (leading to `url`) of the email of `delivery_id`."""
        return str(self._plain[Purpose.CLICK].dumps([delivery_id, link_index, url]))

    def read_click(self, token: str) -> ClickClaim:
        """What a tracked-link token says; raise BadToken if we did not make it."""
        value = self._loads(self._plain[Purpose.CLICK], token)
        if (
            isinstance(value, list)
            and len(value) == 3
            and all(type(part) is int and part >= 0 for part in value[:2])
            and isinstance(value[2], str)
            and value[2].startswith(("https://", "http://"))
        ):
            return ClickClaim(value[0], value[1], value[2])
        raise BadToken("the link is not valid")

    def sign_confirm(self, public_id: str, sequence_id: str) -> str:
        """A token that confirms the open signup of `public_id` to `sequence_id`, stamped now."""
        return str(self._confirm.dumps([public_id, sequence_id]))

    def read_confirm(self, token: str, *, max_age: float) -> ConfirmClaim:
        """What a confirmation token says; raise ExpiredToken past `max_age` seconds, and
        BadToken if we did not make it."""
        try:
            value, issued_at = self._confirm.loads(
                token, max_age=int(max_age), return_timestamp=True
            )
        except SignatureExpired as exc:
            raise ExpiredToken("the link has expired") from exc
        except BadSignature as exc:
            raise BadToken("the link is not valid") from exc
        public_id, sequence_id = _pair(value)
        return ConfirmClaim(public_id, sequence_id, issued_at)

    @staticmethod
    def _loads(serializer: URLSafeSerializer, token: str) -> Any:
        try:
            return serializer.loads(token)
        except BadSignature as exc:
            raise BadToken("the link is not valid") from exc


def _pair(value: Any) -> tuple[str, str]:
    """The `[public_id, sequence_id]` of a bound token; BadToken for any other shape."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, str) and part for part in value)
    ):
        return value[0], value[1]
    raise BadToken("the link is not valid")
