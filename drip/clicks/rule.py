"""Which requests for a tracked link are a person's click: the rule the funnel counts by.

A request is a machine's, recorded but never counted as engagement, when any of these holds:

1. it is a `HEAD` request: a browser following a link sends `GET`; link checkers and
   security gateways probe with `HEAD` (reason `head`);
2. its `User-Agent` is missing, or contains one of `SCANNER_AGENTS` (case-insensitive):
   mail security gateways, link preview fetchers and scripted clients (reason `scanner`);
3. it arrives less than `MIN_SECONDS_AFTER_SEND` seconds after the email was sent: a
   gateway that follows every link on arrival, before any person could have read it
   (reason `too_soon`).

Everything else is a person's click. The rule is judged in the order above, and the first
reason that holds is the one recorded.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

#: A click sooner than this many seconds after the send is a gateway's, not a reader's.
MIN_SECONDS_AFTER_SEND = 10.0

#: Substrings of the User-Agent of link scanners, preview fetchers and scripted clients.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "messagelabs",
    "symantec",
    "trendmicro",
    "forcepoint",
    "fortiguard",
    "sophos",
    "zscaler",
    "ironport",
    "cisco",
    "safelinks",
    "bitdefender",
    "checkpoint",
    "appriver",
    "mailcontrol",
    "googleimageproxy",
    "slackbot",
    "facebookexternalhit",
    "linkedinbot",
    "twitterbot",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "curl/",
    "wget/",
    "okhttp",
    "java/",
    "libwww-perl",
    "bot/",
    "bot;",
    "crawler",
    "spider",
    "scanner",
)


class MachineReason(StrEnum):
    """Why a request was judged a machine's."""

    HEAD = "head"
    SCANNER = "scanner"
    TOO_SOON = "too_soon"


def is_scanner(user_agent: str | None) -> bool:
    """Whether `user_agent` is missing or names a known scanner or scripted client."""
    agent = (user_agent or "").strip().lower()
    return not agent or any(name in agent for name in SCANNER_AGENTS)


def machine_reason(
    *, method: str, user_agent: str | None, clicked_at: datetime, sent_at: datetime | None
) -> MachineReason | None:
    """Why the request is a machine's (see the module's rule), or None for a person's."""
    if method.upper() == "HEAD":
        return MachineReason.HEAD
    if is_scanner(user_agent):
        return MachineReason.SCANNER
    if sent_at is not None and (clicked_at - sent_at).total_seconds() < MIN_SECONDS_AFTER_SEND:
        return MachineReason.TOO_SOON
    return None
