"""The API in docker-compose.yml is not published to the world: a proxy stands in front."""

from __future__ import annotations

import yaml

from tests.conftest import REPO


def test_the_api_port_is_published_on_loopback_only() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    api = compose["services"]["api"]
    for published in api.get("ports", []):
        assert str(published).startswith("127.0.0.1:"), published
    for name, service in compose["services"].items():
        if name != "api":
            assert not service.get("ports"), name
    assert "DRIP_TRUSTED_PROXIES" in compose["x-drip"]["environment"]
