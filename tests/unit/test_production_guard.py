"""`DRIP_ENV=production` refuses settings that would fail subscribers, each by name, unless
an override in `DRIP_PRODUCTION_OVERRIDES` says that one is meant."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from drip.config import Settings

#: A production configuration that passes every rule.
GOOD: dict[str, Any] = {
    "env": "production",
    "secret_key": "k" * 48,
    "postal_address": "1 Example Street, Springfield",
    "base_url": "https://drip.example.com",
    "database_url": "postgresql://drip@db/drip",
    "sendgrid_api_key": "SG.x",
    "sendgrid_webhook_public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
}


def refusal(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**{**GOOD, **changes})
    return str(caught.value)


def test_a_complete_production_configuration_loads() -> None:
    assert Settings(**GOOD).is_production


def test_a_short_secret_is_refused_with_no_override() -> None:
    message = refusal(secret_key="s", production_overrides="base-url,outbox,sqlite,webhook-key")
    assert "DRIP_SECRET_KEY is 1 characters; production needs at least 32" in message


def test_a_short_fallback_key_is_refused_too() -> None:
    message = refusal(secret_key_fallbacks=f"{'o' * 40},short")
    assert "DRIP_SECRET_KEY_FALLBACKS is 5 characters" in message


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8000",
        "http://drip.example.com",
        "https://localhost:8000",
        "https://app.localhost",
        "https://127.0.0.1",
        "https://[::1]:8000",
        "https://0.0.0.0",
    ],
)
def test_a_base_url_subscribers_cannot_reach_is_refused(base_url: str) -> None:
    assert f"DRIP_BASE_URL={base_url!r}" in refusal(base_url=base_url)
    Settings(**{**GOOD, "base_url": base_url, "production_overrides": "base-url"})


def test_the_outbox_is_refused_unless_a_staging_run_says_so() -> None:
    # The outbox by default (no API key) or by name
    assert "DRIP_TRANSPORT is the outbox" in refusal(sendgrid_api_key=None)
    assert "DRIP_TRANSPORT is the outbox" in refusal(transport="outbox")
    # A staging run on the outbox names that override, and needs no webhook key
    Settings(**{**GOOD, "transport": "outbox", "production_overrides": "outbox"})
    Settings(
        **{
            **GOOD,
            "transport": "outbox",
            "sendgrid_webhook_public_key": None,
            "production_overrides": "outbox",
        }
    )


def test_sqlite_is_refused_unless_overridden() -> None:
    assert "DRIP_DATABASE_URL is SQLite" in refusal(database_url="sqlite:///drip.db")
    Settings(**{**GOOD, "database_url": "sqlite:///drip.db", "production_overrides": "sqlite"})


def test_sending_without_a_webhook_key_is_refused_unless_overridden() -> None:
    assert "DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY is not set" in refusal(
        sendgrid_webhook_public_key=None
    )
    Settings(**{**GOOD, "sendgrid_webhook_public_key": None, "production_overrides": "webhook-key"})


def test_an_override_relaxes_only_the_rule_it_names() -> None:
    message = refusal(
        database_url="sqlite:///drip.db", transport="outbox", production_overrides="outbox"
    )
    assert "DRIP_DATABASE_URL is SQLite" in message
    assert "DRIP_TRANSPORT" not in message


def test_an_unknown_override_is_refused_by_name() -> None:
    message = refusal(production_overrides="outbox, sqlite ,smtp")
    assert "DRIP_PRODUCTION_OVERRIDES: 'smtp' is not an override" in message


def test_the_overrides_and_fallbacks_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in GOOD.items():
        if value is not None:
            monkeypatch.setenv(f"DRIP_{name.upper()}", str(value))
    monkeypatch.setenv("DRIP_TRANSPORT", "outbox")
    monkeypatch.setenv("DRIP_PRODUCTION_OVERRIDES", "outbox")
    monkeypatch.setenv("DRIP_SECRET_KEY_FALLBACKS", f"{'a' * 32}, {'b' * 32}")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.fallback_keys == ("a" * 32, "b" * 32)
    assert [str(o) for o in settings.overrides] == ["outbox"]


def test_the_original_production_problems_are_reported_alongside() -> None:
    # Every problem in one message, so a deploy is fixed in one round
    message = refusal(
        secret_key=None, postal_address=None, base_url="http://127.0.0.1:8000", transport="outbox"
    )
    assert "DRIP_SECRET_KEY, DRIP_POSTAL_ADDRESS must be set when DRIP_ENV=production" in message
    assert "DRIP_BASE_URL" in message
    assert "DRIP_TRANSPORT" in message


def test_development_is_left_alone() -> None:
    settings = Settings(env="development", secret_key="s", _env_file=None)  # type: ignore[call-arg]
    assert not settings.is_production
