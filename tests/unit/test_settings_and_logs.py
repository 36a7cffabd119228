"""Settings refuse an unsafe production config; logs never carry a whole address."""

import json
import logging

import pytest
import structlog
from pydantic import ValidationError

from drip.config import Settings, TransportName
from drip.logs import configure_logging, mask_address


def test_production_requires_a_secret_key_and_a_postal_address() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="production", secret_key=None, postal_address=None)
    assert "DRIP_SECRET_KEY, DRIP_POSTAL_ADDRESS must be set when DRIP_ENV=production" in str(
        caught.value
    )
    # With both, and the rest of a production setup (tests/unit/test_production_guard.py)
    Settings(
        env="production",
        secret_key="s" * 32,
        postal_address="1 Example Street",
        base_url="https://drip.example.com",
        database_url="postgresql://drip@db/drip",
        sendgrid_api_key="SG.x",
        sendgrid_webhook_public_key="key",
    )


def test_the_transport_follows_the_api_key_unless_named() -> None:
    assert Settings(sendgrid_api_key=None).transport_name is TransportName.OUTBOX
    assert Settings(sendgrid_api_key="SG.x").transport_name is TransportName.SENDGRID
    assert (
        Settings(sendgrid_api_key="SG.x", transport="outbox").transport_name is TransportName.OUTBOX
    )


def test_addresses_are_masked() -> None:
    assert (
        mask_address("sent to ann.smith@example.com and b@x.org")
        == "sent to a***@example.com and b***@x.org"
    )


def test_no_log_line_carries_a_whole_address(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(json=True)
        structlog.get_logger("t").info("signup.accepted", email="ann.smith@example.com")
        logging.getLogger("uvicorn.error").info("request from ann.smith@example.com")
        lines = capsys.readouterr().err.strip().splitlines()
    finally:
        root.handlers[:], root.level = saved
        structlog.reset_defaults()
    assert [json.loads(line)["email"] for line in lines[:1]] == ["a***@example.com"]
    assert all("ann.smith@" not in line for line in lines)
    assert len(lines) == 2
