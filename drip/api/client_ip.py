"""The client's address for per-IP limits, believing `X-Forwarded-For` only from our proxies.

The socket peer is the client unless it is one of `DRIP_TRUSTED_PROXIES`. When it is, the
`X-Forwarded-For` chain is read from the right (each proxy appends the address it saw) and
the first address that is not a trusted proxy is the client: entries to its left were
written by the client itself and could say anything. With no trusted proxies the header is
ignored entirely, so nobody can pick their own rate-limit bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from drip.config import IPNetwork

#: The header reverse proxies append the address they saw to.
FORWARDED_FOR = "x-forwarded-for"


def _trusted(address: str, networks: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address: `peer`, or the right-most untrusted hop when `peer` is trusted.

    `forwarded_for` is every `X-Forwarded-For` header value, in the order received. A hop
    that is not an IP address ends the walk: the last trusted hop before it is used.
    """
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if not _trusted(hop, trusted):
            return hop
    return client
