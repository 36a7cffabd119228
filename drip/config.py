"""Settings: one pydantic-settings object, read from `DRIP_*` variables and a `.env` file.

Settings are read at the edges (API, worker, scheduler, CLI) and passed inward as
explicit arguments; nothing below those edges imports this module's `Settings()`.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from drip.production import Override, parse_overrides, production_problems
from drip.secret_file import read_or_create_secret

#: The highest daily cap (DRIP_MAX_EMAILS_PER_DAY, `--max-per-day`): a cap above it is no
#: cap for a drip, and plan's forecast reads one column per email of the cap.
MAX_DAILY_CAP = 1000

#: The shortest admin or metrics bearer token accepted.
MIN_TOKEN_LENGTH = 32

#: An IPv4 or IPv6 network, as `ipaddress.ip_network` returns.
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Environment(StrEnum):
    """Where drip runs: development (embedded defaults) or production (every guard on)."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class TransportName(StrEnum):
    """How emails leave: SendGrid, or .eml files in the outbox folder."""

    SENDGRID = "sendgrid"
    OUTBOX = "outbox"


class DatabasePooling(StrEnum):
    """What stands between drip and PostgreSQL. `session`: nothing, or a pooler that gives a
    client one server connection for its whole session. `transaction`: PgBouncer in
    transaction pooling, where consecutive transactions may run on different server
    connections, so drip prepares no statement on the server (psycopg's automatic prepared
    statements are turned off)."""

    SESSION = "session"
    TRANSACTION = "transaction"


class AmbiguousPolicy(StrEnum):
    """What to do with a send whose outcome is unknown and that no `processed` event confirmed."""

    RESEND = "resend"
    REVIEW = "review"


class Settings(BaseSettings):
    """Every setting of the service; see the table in the README."""

    model_config = SettingsConfigDict(env_prefix="DRIP_", env_file=".env", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///drip.db"
    #: Connections each process keeps open once used (at least its worker threads).
    db_pool_size: int = Field(default=5, gt=0)
    #: Connections a process may open beyond `db_pool_size` under load, closed once returned.
    #: A process never holds more than max(db_pool_size, worker_threads) + db_max_overflow.
    db_max_overflow: int = Field(default=5, ge=0)
    #: `transaction` when DRIP_DATABASE_URL points at PgBouncer in transaction pooling.
    database_pooling: DatabasePooling = DatabasePooling.SESSION
    redis_url: str | None = None
    redis_namespace: str = "drip"
    transport: TransportName | None = None
    sendgrid_api_key: str | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_timeout: float = Field(default=10.0, gt=0)
    sendgrid_webhook_public_key: str | None = None
    outbox_dir: Path = Path("outbox")
    sequences_dir: Path = Path("sequences")
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    #: Old signing keys (comma-separated) whose links still verify after a rotation.
    secret_key_fallbacks: str = ""
    #: Production rules knowingly broken (comma-separated names, see `drip.production`).
    production_overrides: str = ""
    #: Keys the address hash (`contacts.email_hash`); unset: derived from the secret key.
    #: Never rotate it: stored hashes would no longer be found (drip/contacts/identity.py).
    hash_key: str | None = None
    postal_address: str | None = None
    scheduler_interval: float = Field(default=5.0, gt=0)
    scheduler_batch_size: int = Field(default=500, gt=0)
    default_sequence: str = "executive-resume"
    #: A queued row whose message was lost (Redis restart, killed worker) is enqueued again
    #: after this many seconds.
    queue_lease: float = Field(default=120.0, gt=0)
    #: A row left in `sending` (a worker died mid-send) is resolved after this many seconds.
    send_lease: float = Field(default=300.0, gt=0)
    ambiguous_policy: AmbiguousPolicy = AmbiguousPolicy.RESEND
    #: Seconds a send whose answer was lost waits for the provider's `processed` event.
    ambiguous_wait: float = Field(default=900.0, gt=0)
    #: Emails per second across all workers (shared through Redis); 0 means no limit.
    send_rate: float = Field(default=0.0, ge=0)
    #: Emails of one batch in flight at once, per worker process.
    send_concurrency: int = Field(default=8, gt=0, le=64)
    #: Emails one contact may get in any 24 hours, all sequences together; a step past it
    #: is postponed, never dropped. 0: no cap.
    max_emails_per_day: int = Field(default=0, ge=0, le=MAX_DAILY_CAP)
    send_max_attempts: int = Field(default=8, gt=0)
    send_min_backoff: float = Field(default=1.0, gt=0)
    send_max_backoff: float = Field(default=300.0, gt=0)
    worker_threads: int = Field(default=4, gt=0)
    #: An address that receives unsubscribe requests by mail, added to List-Unsubscribe.
    unsubscribe_mailto: str | None = None
    #: Seconds a confirmation request stays open before the signup expires (7 days).
    confirmation_ttl: float = Field(default=7 * 86400, gt=0)
    #: Signups allowed per client IP and per address, as `N/second|minute|hour|day`.
    signup_rate_per_ip: str = "20/minute"
    signup_rate_per_address: str = "5/hour"
    #: The largest webhook body accepted, in bytes (SendGrid batches stay far below it).
    webhook_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    #: Port of the worker's Prometheus endpoint (Dramatiq's middleware); 0 turns it off.
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    #: Bearer token for the read-only `/admin` page; unset: the page is off.
    admin_token: str | None = None
    #: Bearer token Prometheus gives to scrape `/metrics`; unset: `/metrics` is off.
    metrics_token: str | None = None
    #: Reverse proxies (comma-separated IPs or CIDRs) whose `X-Forwarded-For` is believed.
    trusted_proxies: str = ""
    #: Where the embedded defaults keep their state: the generated secret and the embedded Redis.
    state_dir: Path = Path(".drip")
    #: Days raw provider events are kept; older months are counted, then removed.
    event_retention: int = Field(default=180, gt=0)
    #: Addresses (comma-separated) the studio's test-send button may send to; unset: none.
    test_recipients: str = ""

    @field_validator("admin_token", "metrics_token")
    @classmethod
    def _long_enough(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A short bearer token falls to guessing; 32 characters is what `token_urlsafe(24)` gives.
        if value and len(value) < MIN_TOKEN_LENGTH:
            name = f"DRIP_{(info.field_name or '').upper()}"
            raise ValueError(
                f"{name} must be at least {MIN_TOKEN_LENGTH} characters "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value or None  # set but empty (as compose passes it): off

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"DRIP_TRUSTED_PROXIES: {item!r} is not an IP address or network"
                ) from exc
        return value

    @field_validator("production_overrides")
    @classmethod
    def _known_overrides(cls, value: str) -> str:
        parse_overrides(value)
        return value

    @property
    def fallback_keys(self) -> tuple[str, ...]:
        """The keys of `secret_key_fallbacks`: they verify links, and never sign one."""
        return tuple(filter(None, (part.strip() for part in self.secret_key_fallbacks.split(","))))

    @property
    def test_recipient_addresses(self) -> tuple[str, ...]:
        """The addresses of `test_recipients`, as written."""
        return tuple(filter(None, (part.strip() for part in self.test_recipients.split(","))))

    @property
    def overrides(self) -> frozenset[Override]:
        """The production rules `production_overrides` names (validated when settings load)."""
        return parse_overrides(self.production_overrides)

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """The networks of `trusted_proxies`, parsed (validated when the settings load)."""
        return tuple(
            ipaddress.ip_network(item, strict=False)
            for item in filter(None, (part.strip() for part in self.trusted_proxies.split(",")))
        )

    @model_validator(mode="after")
    def _check_production(self) -> Self:
        if self.env is Environment.PRODUCTION:
            missing = [
                name
                for name, value in (
                    ("DRIP_SECRET_KEY", self.secret_key),
                    ("DRIP_POSTAL_ADDRESS", self.postal_address),
                )
                if not value
            ]
            problems = [f"{', '.join(missing)} must be set when DRIP_ENV=production"] * bool(
                missing
            )
            problems += production_problems(
                secret_keys=[("DRIP_SECRET_KEY", self.secret_key or "")] * bool(self.secret_key)
                + [("DRIP_SECRET_KEY_FALLBACKS", key) for key in self.fallback_keys],
                base_url=self.base_url,
                outbox=self.transport_name is TransportName.OUTBOX,
                database_url=self.database_url,
                sendgrid_webhook_public_key=self.sendgrid_webhook_public_key,
                overrides=self.overrides,
            )
            if problems:
                raise ValueError("; ".join(problems))
        return self

    @property
    def transport_name(self) -> TransportName:
        """The transport in use: explicit, else SendGrid when an API key is set, else the outbox."""
        if self.transport is not None:
            return self.transport
        return TransportName.SENDGRID if self.sendgrid_api_key else TransportName.OUTBOX

    @property
    def is_production(self) -> bool:
        """Whether `DRIP_ENV=production`: the production guard applies."""
        return self.env is Environment.PRODUCTION

    def resolved_secret_key(self) -> str:
        """The signing key: the configured one, else one generated once into `.drip/secret`."""
        if self.secret_key:
            return self.secret_key
        return read_or_create_secret(self.state_dir / "secret")

    def resolved_hash_key(self) -> str:
        """The address hash key: `DRIP_HASH_KEY`, else one derived from the signing key."""
        from drip.contacts.identity import derive_hash_key

        return self.hash_key or derive_hash_key(self.resolved_secret_key())

    def resolved_postal_address(self) -> str:
        """The postal address for the footer; a neutral placeholder in development."""
        return self.postal_address or "The Resume Studio, 100 Example Street, Springfield, USA"
