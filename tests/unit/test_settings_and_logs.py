"""Settings refuse an unsafe production config; logs never carry a whole address."""

import json
import logging

import pytest
import structlog
from pydantic import ValidationError

from drip.config import MAX_DAILY_CAP, Settings, TransportName
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


def test_a_url_encoded_address_is_masked_too() -> None:
    assert (
        mask_address("POST /admin/contact?email=ann.smith%40example.com")
        == "POST /admin/contact?email=a***@example.com"
    )


def test_access_log_lines_carry_no_query_string_and_no_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    access = logging.getLogger("uvicorn.access")
    try:
        configure_logging(json=True)
        line = '%s - "%s %s HTTP/%s" %d'
        access.info(
            line, "1.2.3.4:5", "GET", "/admin?token=sekrit&email=ann%40example.com", "1.1", 200
        )
        access.info(line, "1.2.3.4:5", "POST", "/unsubscribe/InRva2VuIg.sig", "1.1", 200)
        access.info(line, "1.2.3.4:5", "GET", "/download/quick/InRva2VuIg.sig", "1.1", 200)
        access.info(line, "1.2.3.4:5", "GET", "/healthz", "1.1", 200)
        lines = [json.loads(x)["event"] for x in capsys.readouterr().err.strip().splitlines()]
    finally:
        root.handlers[:], root.level = saved
        structlog.reset_defaults()
    assert lines == [
        '1.2.3.4:5 - "GET /admin?[redacted] HTTP/1.1" 200',
        '1.2.3.4:5 - "POST /unsubscribe/[token] HTTP/1.1" 200',
        '1.2.3.4:5 - "GET /download/quick/[token] HTTP/1.1" 200',
        '1.2.3.4:5 - "GET /healthz HTTP/1.1" 200',
    ]


@pytest.mark.parametrize("name", ["admin_token", "metrics_token"])
def test_a_short_operator_token_stops_the_settings_naming_it(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{name: "s3cret"})
    assert f"DRIP_{name.upper()} must be at least 32 characters" in str(caught.value)
    assert getattr(Settings(**{name: "x" * 32}), name) == "x" * 32
    assert getattr(Settings(**{name: ""}), name) is None  # set but empty: off


def test_trusted_proxies_are_networks_or_the_settings_say_which_is_not() -> None:
    networks = Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1,::1").trusted_proxy_networks
    assert [str(n) for n in networks] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert Settings().trusted_proxy_networks == ()
    with pytest.raises(ValidationError, match=r"DRIP_TRUSTED_PROXIES: 'proxy\.local'"):
        Settings(trusted_proxies="10.0.0.1,proxy.local")


def test_a_daily_cap_past_the_highest_is_refused_naming_the_setting() -> None:
    assert Settings(max_emails_per_day=MAX_DAILY_CAP).max_emails_per_day == MAX_DAILY_CAP
    with pytest.raises(ValidationError, match="max_emails_per_day"):
        Settings(max_emails_per_day=MAX_DAILY_CAP + 1)
