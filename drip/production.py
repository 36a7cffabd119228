"""The production guard: settings that are fine on a laptop and wrong in front of subscribers.

With `DRIP_ENV=production` the settings refuse to load when any of these holds, and the
message names the setting and what to do:

- `DRIP_SECRET_KEY` (or a key of `DRIP_SECRET_KEY_FALLBACKS`) is shorter than
  `MIN_SECRET_LENGTH`: a short key lets anyone forge unsubscribe, download and confirmation
  links. There is no override: a long key costs one command.
- `DRIP_BASE_URL` is not https, or names this machine (localhost, a loopback or unspecified
  address): every link in every email would be dead. Override: `base-url`.
- the transport is the outbox: nothing would actually be sent. Override: `outbox`.
- `DRIP_DATABASE_URL` is SQLite: one file, one writer, no `SKIP LOCKED`. Override: `sqlite`.
- the transport is SendGrid and `DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY` is unset: the webhook is
  refused, so bounces and complaints would never stop anyone's emails. Override:
  `webhook-key`. (With the outbox nothing reaches a provider, so no key is asked for.)

An override is named in `DRIP_PRODUCTION_OVERRIDES` (comma-separated), one per rule that is
meant to be broken, e.g. `DRIP_PRODUCTION_OVERRIDES=outbox` for a staging run that writes
`.eml` files. An unknown name is refused, so a typo never switches a check off silently.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from enum import StrEnum
from urllib.parse import urlsplit

#: The shortest signing key accepted in production: what `secrets.token_urlsafe(24)` gives.
MIN_SECRET_LENGTH = 32

#: How to make a key, quoted in the refusal.
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


class Override(StrEnum):
    """A production rule an operator may knowingly break, by name."""

    BASE_URL = "base-url"
    OUTBOX = "outbox"
    SQLITE = "sqlite"
    WEBHOOK_KEY = "webhook-key"


def parse_overrides(value: str | Iterable[str]) -> frozenset[Override]:
    """The overrides named in `value` (a comma-separated string or names); ValueError naming
    `DRIP_PRODUCTION_OVERRIDES` for an unknown one."""
    names = value.split(",") if isinstance(value, str) else list(value)
    overrides = set()
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        try:
            overrides.add(Override(name))
        except ValueError:
            known = ", ".join(o.value for o in Override)
            raise ValueError(
                f"DRIP_PRODUCTION_OVERRIDES: {raw.strip()!r} is not an override (known: {known})"
            ) from None
    return frozenset(overrides)


def production_problems(
    *,
    secret_keys: Iterable[tuple[str, str]],
    base_url: str,
    outbox: bool,
    database_url: str,
    sendgrid_webhook_public_key: str | None,
    overrides: frozenset[Override],
) -> list[str]:
    """Every rule above that the given settings break, one sentence each, naming the setting.

    `secret_keys` pairs each configured key with the setting it comes from."""
    problems = [
        f"{setting} is {len(key)} characters; production needs at least {MIN_SECRET_LENGTH} "
        f"(make one with: {MAKE_A_KEY})"
        for setting, key in secret_keys
        if len(key) < MIN_SECRET_LENGTH
    ]
    if Override.BASE_URL not in overrides and (reason := _unreachable(base_url)):
        problems.append(
            f"DRIP_BASE_URL={base_url!r} {reason}: the links in every email would not reach "
            f"subscribers; set the public https URL, or add '{Override.BASE_URL}' to "
            "DRIP_PRODUCTION_OVERRIDES"
        )
    if outbox and Override.OUTBOX not in overrides:
        problems.append(
            "DRIP_TRANSPORT is the outbox: nothing would actually be sent; set "
            "DRIP_SENDGRID_API_KEY (or DRIP_TRANSPORT=sendgrid), or add "
            f"'{Override.OUTBOX}' to DRIP_PRODUCTION_OVERRIDES for a staging run"
        )
    if database_url.startswith("sqlite") and Override.SQLITE not in overrides:
        problems.append(
            "DRIP_DATABASE_URL is SQLite: production needs PostgreSQL (several processes, "
            f"SKIP LOCKED); set a postgresql:// URL, or add '{Override.SQLITE}' to "
            "DRIP_PRODUCTION_OVERRIDES"
        )
    if not outbox and not sendgrid_webhook_public_key and Override.WEBHOOK_KEY not in overrides:
        problems.append(
            "DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY is not set: the event webhook is refused, so "
            "bounces and complaints would never stop anyone's emails; set it, or add "
            f"'{Override.WEBHOOK_KEY}' to DRIP_PRODUCTION_OVERRIDES"
        )
    return problems


def _unreachable(base_url: str) -> str | None:
    """Why subscribers could not follow links under `base_url`, or None if they could."""
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return "is not https"
    host = (parts.hostname or "").lower()
    if not host:
        return "has no host"
    if host == "localhost" or host.endswith(".localhost"):
        return "names this machine"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return "names this machine"
    return None
