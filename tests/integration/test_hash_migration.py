"""Migration 0006 keys the stored address hashes: forgotten and bounced addresses that sign up
again are still recognised, on PostgreSQL and on SQLite."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from drip.config import Settings
from drip.contacts.identity import derive_hash_key
from drip.db import transaction, utcnow
from drip.errors import HashKeyMismatch
from drip.migrate import alembic_config
from drip.models import AuditEntry, Contact, ContactStatus, Delivery, Enrollment
from drip.runtime import Runtime, build_runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact

#: The key the service and the migration share in these tests.
HASH_KEY = "a-hash-key-for-the-migration-test-0123456789"


def _old_hash(address: str) -> str:
    """What drip stored before 0006: SHA-256 of the address, unkeyed."""
    return hashlib.sha256(address.encode()).hexdigest()


def test_forgotten_and_bounced_addresses_are_recognised_across_the_migration(
    empty_database: str, sequences_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database at 0005 holding a forgotten contact (its hash alone, named so by the
    # audit trail) and a bounced one, hashed the old way
    config = alembic_config(empty_database)
    command.upgrade(config, "0005")
    engine = sa.create_engine(empty_database)
    now = utcnow()
    with engine.begin() as db:
        for number, (address, status, reason) in enumerate(
            [
                ("gone@example.com", "forgotten", "forgotten on request"),
                ("bounced@example.com", "suppressed", "bounce"),
            ],
            start=1,
        ):
            db.execute(
                sa.insert(Contact.__table__).values(
                    id=number,
                    public_id=uuid.uuid4().hex,
                    email=None,
                    email_hash=_old_hash(address),
                    attributes={},
                    status=status,
                    status_reason=reason,
                    created_at=now,
                    updated_at=now,
                )
            )
        db.execute(
            sa.insert(AuditEntry.__table__).values(
                at=now,
                action="contact.forget",
                operator="ops",
                target=_old_hash("gone@example.com"),
                details={},
            )
        )
    engine.dispose()
    # When the database is migrated with the service's settings
    monkeypatch.setenv("DRIP_HASH_KEY", HASH_KEY)
    command.upgrade(config, "head")
    settings = Settings(
        database_url=empty_database,
        sequences_dir=sequences_dir,
        secret_key="a-secret-key-that-is-not-the-hash-key-0123",
        hash_key=HASH_KEY,
        state_dir=tmp_path / "state",
        default_sequence="quick",
        outbox_dir=tmp_path / "outbox",
    )
    runtime = build_runtime(settings)
    try:
        with runtime.sessions() as session:
            stored = {i: h for i, h in session.execute(sa.select(Contact.id, Contact.email_hash))}
            audit_target = session.scalars(sa.select(AuditEntry.target)).one()
        # Then no stored value is the dictionary-reversible digest any more
        assert _old_hash("gone@example.com") not in stored.values()
        assert audit_target == stored[1]
        # And both addresses, signing up again, are the contacts they were
        outcomes = []
        for address in ("Gone@Example.com", "bounced@example.com"):
            with transaction(runtime.sessions) as session:
                result = enroll_contact(
                    session,
                    SignupRequest(email=address),
                    catalog=runtime.catalog,
                    default_sequence="quick",
                    now=utcnow(),
                    queue_lease=60,
                )
            outcomes.append((result.enrolled, result.confirmation_sent))
        # Neither is enrolled silently: the forgotten one only through a confirmation, the
        # bounced one never
        assert outcomes == [(False, True), (False, False)]
        with runtime.sessions() as session:
            contacts = session.scalars(sa.select(Contact).order_by(Contact.id)).all()
            assert [c.id for c in contacts] == [1, 2]
            assert [c.status for c in contacts] == [
                ContactStatus.FORGOTTEN,
                ContactStatus.SUPPRESSED,
            ]
            steps = session.scalars(sa.select(Delivery.step_id).order_by(Delivery.id)).all()
            assert steps == ["_confirm"]
            assert session.scalars(sa.select(Enrollment.contact_id)).all() == [1]
    finally:
        runtime.close()


def _gone_at_0005(url: str) -> None:
    """A database at 0005 holding one forgotten contact, hashed the old way."""
    command.upgrade(alembic_config(url), "0005")
    engine = sa.create_engine(url)
    now = utcnow()
    with engine.begin() as db:
        db.execute(
            sa.insert(Contact.__table__).values(
                id=1,
                public_id=uuid.uuid4().hex,
                email=None,
                email_hash=_old_hash("gone@example.com"),
                attributes={},
                status="forgotten",
                status_reason="forgotten on request",
                created_at=now,
                updated_at=now,
            )
        )
    engine.dispose()


def _recognised(runtime: Runtime) -> bool:
    """Whether the forgotten address, signing up again, is the contact it was."""
    with transaction(runtime.sessions) as session:
        enroll_contact(
            session,
            SignupRequest(email="gone@example.com"),
            catalog=runtime.catalog,
            default_sequence="quick",
            now=utcnow(),
            queue_lease=60,
        )
    with runtime.sessions() as session:
        return session.scalars(sa.select(Contact.id)).all() == [1]


def test_rotating_the_secret_key_keeps_the_hash_key_it_derived_and_another_key_is_refused(
    empty_database: str, sequences_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database keyed, by migration 0006, with the key derived from the old secret
    _gone_at_0005(empty_database)
    old, new = "the-old-secret-key-0123456789abcdef", "the-new-secret-key-0123456789abcdef"
    monkeypatch.delenv("DRIP_HASH_KEY", raising=False)
    monkeypatch.setenv("DRIP_SECRET_KEY", old)
    command.upgrade(alembic_config(empty_database), "head")
    base = Settings(
        database_url=empty_database,
        sequences_dir=sequences_dir,
        state_dir=tmp_path / "state",
        default_sequence="quick",
        outbox_dir=tmp_path / "outbox",
    )
    # When the secret key is rotated, the old one kept as a fallback
    rotated = build_runtime(
        base.model_copy(update={"secret_key": new, "secret_key_fallbacks": old})
    )
    try:
        # Then the hash key derived from the old secret stays in use: the address is known
        assert _recognised(rotated)
    finally:
        rotated.close()
    # And a service holding neither that secret nor the key refuses to start, naming both
    for update in ({"secret_key": new}, {"secret_key": old, "hash_key": "some-other-key"}):
        with pytest.raises(HashKeyMismatch, match=r"DRIP_HASH_KEY.*DRIP_SECRET_KEY_FALLBACKS"):
            build_runtime(base.model_copy(update=update))
    # And with the database down, a rotating service cannot tell which key is right: refused
    unreachable = {"database_url": "postgresql://postgres@127.0.0.1:1/none"}
    with pytest.raises(HashKeyMismatch, match="unreachable"):
        build_runtime(base.model_copy(update={**unreachable, "secret_key_fallbacks": old}))
    # And pinning the key derived from the old secret works without the old secret
    pinned = build_runtime(
        base.model_copy(update={"secret_key": new, "hash_key": derive_hash_key(old)})
    )
    try:
        assert _recognised(pinned)
    finally:
        pinned.close()


def test_the_migration_needs_no_key_when_there_is_nothing_to_key(
    empty_database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A fresh database migrates whatever the environment holds
    monkeypatch.delenv("DRIP_HASH_KEY", raising=False)
    monkeypatch.setenv("DRIP_STATE_DIR", str(tmp_path / "no-state"))
    command.upgrade(alembic_config(empty_database), "head")
    assert not (tmp_path / "no-state").exists()
    # The first service to start records its key's fingerprint, and a second key is refused
    settings = Settings(
        database_url=empty_database,
        sequences_dir=Path(__file__).parents[1] / "data" / "sequences",
        secret_key="first-secret-key-0123456789abcdefgh",
        state_dir=tmp_path / "state",
    )
    build_runtime(settings).close()
    with pytest.raises(HashKeyMismatch):
        build_runtime(settings.model_copy(update={"secret_key": "x" * 40}))
