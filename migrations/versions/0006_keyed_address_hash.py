"""the address hash becomes a keyed HMAC of the stored digest

`contacts.email_hash` held SHA-256(address): anyone holding a copy of the database could
find which known addresses are subscribers, or were forgotten, by hashing a list of
addresses. It becomes HMAC-SHA256(hash key, SHA-256 hex digest of the address), computed
here from the stored digest, because a forgotten contact has no address left to rehash
(`drip.contacts.identity`).

The hash key is read from the settings, as the running service reads it: `DRIP_HASH_KEY`,
else derived from `DRIP_SECRET_KEY`. Run this migration with the same environment as the
service; with no contacts to convert, no key is needed. Audit entries that named a
forgotten contact by its old digest are converted with it.

The new table `hash_key_checks` keeps a fingerprint of the key (an HMAC of a fixed label):
a service started with another key refuses to run (`drip.contacts.keys`). This migration
records it when it keyed any row; otherwise the first service to start does.

There is no way back: an HMAC cannot be undone without the addresses.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from drip.contacts.identity import keyed_digest
from drip.contacts.keys import CHECK_NAME, fingerprint

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rows converted per round trip.
BATCH = 1000


def upgrade() -> None:
    checks = op.create_table(
        "hash_key_checks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hash_key_checks")),
    )
    bind = op.get_bind()
    contacts = sa.table("contacts", sa.column("id"), sa.column("email_hash"))
    audit = sa.table("audit_entries", sa.column("id"), sa.column("target"))
    key: str | None = None
    last_id = 0
    converted = 0
    while rows := bind.execute(
        sa.select(contacts.c.id, contacts.c.email_hash)
        .where(contacts.c.id > last_id)
        .order_by(contacts.c.id)
        .limit(BATCH)
    ).all():
        if key is None:
            from drip.config import Settings

            key = Settings().resolved_hash_key()
        keyed = {old: keyed_digest(old, key=key) for _, old in rows}
        bind.execute(
            sa.update(contacts)
            .where(contacts.c.id == sa.bindparam("row_id"))
            .values(email_hash=sa.bindparam("new")),
            [{"row_id": row_id, "new": keyed[old]} for row_id, old in rows],
        )
        named = bind.execute(
            sa.select(audit.c.id, audit.c.target).where(audit.c.target.in_(keyed))
        ).all()
        if named:
            bind.execute(
                sa.update(audit)
                .where(audit.c.id == sa.bindparam("row_id"))
                .values(target=sa.bindparam("new")),
                [{"row_id": row_id, "new": keyed[target]} for row_id, target in named],
            )
        converted += len(rows)
        last_id = rows[-1][0]
    if key is not None:
        op.bulk_insert(checks, [{"name": CHECK_NAME, "fingerprint": fingerprint(key)}])
        print(f"0006: keyed the address hash of {converted} contacts")


def downgrade() -> None:
    raise NotImplementedError("0006 cannot be undone: a keyed hash cannot be turned back")
