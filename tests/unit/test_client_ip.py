"""The client address for rate limits: X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import pytest

from drip.api.client_ip import client_address
from drip.config import Settings

TRUSTED = Settings(trusted_proxies="10.0.0.0/8, 192.0.2.1").trusted_proxy_networks


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # A peer that is not a trusted proxy is the client, whatever it claims
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        # Behind a trusted proxy: the right-most address the proxy appended
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        # What the client wrote to the left of it is ignored
        ("10.0.0.2", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        # Several trusted hops are skipped, across several headers
        ("10.0.0.2", ["6.6.6.6, 198.51.100.7", "192.0.2.1, 10.1.1.1"], "198.51.100.7"),
        # A trusted proxy that sent no header is the client
        ("10.0.0.2", [], "10.0.0.2"),
        # A hop that is not an address ends the walk at the last trusted hop
        ("10.0.0.2", ["198.51.100.7, junk, 10.0.0.3"], "10.0.0.3"),
        # IPv6
        ("10.0.0.2", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_the_client_address(peer: str, forwarded_for: list[str], client: str) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == client


def test_with_no_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"
