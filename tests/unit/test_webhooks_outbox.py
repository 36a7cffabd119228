"""The webhook outbox on SQLite: one statement per emit, rows only for endpoints that
listen, nothing after a rollback, enqueued after commit; endpoints synced from the file;
the recovery job's choice of rows; replays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from drip.db import create_db_engine, session_factory, transaction
from drip.errors import OperationRefused, WebhookConfigError
from drip.migrate import upgrade_database
from drip.models import AuditEntry, WebhookEndpoint, WebhookEvent, WebhookStatus
from drip.webhooks.config_file import EndpointSpec, FileEndpoints
from drip.webhooks.endpoints import (
    REMOVED_FROM_FILE,
    add_endpoint,
    disable_endpoint,
    remove_endpoint,
    sync_file_endpoints,
)
from drip.webhooks.events import Event, EventType
from drip.webhooks.history import replay
from drip.webhooks.outbox import deliver_after_commit, emit
from drip.webhooks.recovery import REQUEUE_AFTER, take_due

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    yield session_factory(engine)
    engine.dispose()


def endpoint(session: Session, url: str, events: list[str]) -> int:
    return add_endpoint(
        session, url, events, "SECRET", development=True, operator="test", now=NOW
    ).id


def sent(n: int) -> list[Event]:
    return [
        Event(EventType.EMAIL_SENT, None, NOW, {"delivery_id": i, "step": "welcome"})
        for i in range(n)
    ]


class Statements:
    """Counts the statements a block sends to the database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.engine = sessions.kw["bind"]
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(statement)


def rows(session: Session) -> list[tuple[str, int, str]]:
    return [
        (r.event_type, r.endpoint_id, r.event_id)
        for r in session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
    ]


def test_with_no_listener_an_emit_is_one_statement_that_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        endpoint(session, "http://127.0.0.1:9/other", ["contact.subscribed"])
    with transaction(sessions) as session:
        session.execute(select(1))  # the transaction's BEGIN is not the emit's
        with Statements(sessions) as statements:
            emit(session, sent(25), now=NOW)
            emit(session, [], now=NOW)  # nothing to say: no statement at all
        assert len(statements.seen) == 1
        assert statements.seen[0].lstrip().startswith("INSERT")
        assert rows(session) == []


def test_one_row_per_listening_enabled_endpoint_in_one_statement(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        crm = endpoint(session, "http://127.0.0.1:9/crm", ["contact.subscribed", "email.sent"])
        warehouse = endpoint(session, "http://127.0.0.1:9/dw", ["email.sent"])
        gone = endpoint(session, "http://127.0.0.1:9/gone", ["email.sent"])
        disable_endpoint(session, session.get_one(WebhookEndpoint, gone), reason="410", now=NOW)
    events = [*sent(3), Event(EventType.CONTACT_SUBSCRIBED, None, NOW, {"sequence": "quick"})]
    with transaction(sessions) as session:
        session.execute(select(1))
        with Statements(sessions) as statements:
            emit(session, events, now=NOW)
        assert len(statements.seen) == 1
        got = rows(session)
    assert sorted((t, e) for t, e, _ in got) == sorted(
        [("email.sent", crm)] * 3 + [("email.sent", warehouse)] * 3 + [("contact.subscribed", crm)]
    )
    # Each event keeps one id across its endpoints.
    ids_by_event = {eid for _, _, eid in got}
    assert ids_by_event == {e.id for e in events}


def test_a_rollback_leaves_no_row_and_enqueues_nothing_a_commit_enqueues_the_rows(
    sessions: sessionmaker[Session],
) -> None:
    enqueued: list[list[int]] = []

    def enqueue(ids: list[int]) -> None:
        # A worker reads the rows on another connection: they must be committed by now.
        with sessions() as other:
            visible = other.scalars(select(WebhookEvent.id).where(WebhookEvent.id.in_(ids)))
            assert sorted(visible) == sorted(ids)
        enqueued.append(ids)

    deliver_after_commit(sessions, enqueue)
    with transaction(sessions) as session:
        endpoint(session, "http://127.0.0.1:9/crm", ["email.sent"])
    session = sessions()
    with session.begin():
        emit(session, sent(2), now=NOW)
        session.rollback()  # the change failed
    session.close()
    with transaction(sessions) as session:
        assert rows(session) == []
    assert enqueued == []
    with transaction(sessions) as session:
        emit(session, sent(2), now=NOW)
    with transaction(sessions) as session:
        ids = list(session.scalars(select(WebhookEvent.id).order_by(WebhookEvent.id)))
    assert enqueued == [ids]
    assert len(ids) == 2


def test_an_enqueue_failure_after_commit_loses_nothing(sessions: sessionmaker[Session]) -> None:
    def refuse(_ids: list[int]) -> None:
        raise ConnectionError("Redis is down")

    deliver_after_commit(sessions, refuse)
    with transaction(sessions) as session:
        endpoint(session, "http://127.0.0.1:9/crm", ["email.sent"])
        emit(session, sent(1), now=NOW)
    with transaction(sessions) as session:
        assert len(rows(session)) == 1
        later = NOW + REQUEUE_AFTER + timedelta(seconds=1)
        assert len(take_due(session, now=later, limit=10)) == 1


def test_the_recovery_job_takes_due_unheld_rows_once_per_due_time(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        endpoint(session, "http://127.0.0.1:9/crm", ["email.sent"])
        emit(session, sent(3), now=NOW)  # enqueued at NOW by the emit's commit hook
    with transaction(sessions) as session:
        assert take_due(session, now=NOW + timedelta(seconds=5), limit=10) == []
        first, second, third = session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        first.next_attempt_at = NOW + timedelta(seconds=30)  # failed once: a retry is due then
        second.claimed_until = NOW + timedelta(minutes=5)  # a sender holds it
        third.status = WebhookStatus.DELIVERED
    with transaction(sessions) as session:
        assert take_due(session, now=NOW + timedelta(seconds=20), limit=10) == []
        assert take_due(session, now=NOW + timedelta(seconds=31), limit=10) == [first.id]
        assert take_due(session, now=NOW + timedelta(seconds=32), limit=10) == []
        # The message of the retry was lost: taken again once REQUEUE_AFTER has passed.
        much_later = NOW + timedelta(seconds=31) + REQUEUE_AFTER + timedelta(seconds=1)
        assert take_due(session, now=much_later, limit=10) == [first.id]


def test_the_file_is_synced_into_the_endpoints(sessions: sessionmaker[Session]) -> None:
    a = EndpointSpec(url="https://a.example.com/h", events=["email.sent"], secret_env="A")
    b = EndpointSpec(url="https://b.example.com/h", events=["contact.subscribed"], secret_env="B")
    with transaction(sessions) as session:
        sync_file_endpoints(session, FileEndpoints((a, b), None), now=NOW)
        emit(session, sent(1), now=NOW)
    a2 = EndpointSpec(url=a.url, events=["contact.confirmed"], secret_env="A2")
    with transaction(sessions) as session:
        sync_file_endpoints(session, FileEndpoints((a2,), None), now=NOW)
    with transaction(sessions) as session:
        by_url = {e.url: e for e in session.scalars(select(WebhookEndpoint))}
        assert by_url[a.url].secret_env == "A2"
        assert by_url[a.url].enabled
        assert not by_url[b.url].enabled
        assert by_url[b.url].disabled_reason == REMOVED_FROM_FILE
        # a no longer hears email.sent; its pending row is still sent (it was due before).
        emit(session, sent(1), now=NOW)
        assert len(rows(session)) == 1
        with pytest.raises(OperationRefused, match=r"declared in webhooks\.yaml"):
            remove_endpoint(session, a.url, operator="test", now=NOW)
    with transaction(sessions) as session:
        sync_file_endpoints(session, FileEndpoints((a2, b), None), now=NOW)
        assert (
            session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.url == b.url))
            .one()
            .enabled
        )


def test_add_checks_every_argument_and_is_audited(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(WebhookConfigError) as caught, transaction(sessions) as session:
        add_endpoint(
            session,
            "http://crm.example.com/h",
            ["nope"],
            "1BAD",
            development=False,
            operator="ann",
            now=NOW,
        )
    assert {p.field for p in caught.value.problems} == {"url", "--events", "--secret-env"}
    with transaction(sessions) as session:
        endpoint(session, "http://127.0.0.1:9/crm", ["email.sent"])
        remove_endpoint(session, "http://127.0.0.1:9/crm", operator="ann", now=NOW, reason="moved")
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["webhooks.add", "webhooks.remove"]


def test_replay_makes_failed_rows_due_again_with_the_same_event_id(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        endpoint(session, "http://127.0.0.1:9/crm", ["email.sent"])
        emit(session, sent(3), now=NOW)
    with transaction(sessions) as session:
        first, second, third = session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        first.status = second.status = WebhookStatus.FAILED
        third.status = WebhookStatus.DELIVERED
        event_ids = [first.event_id, second.event_id]
    later = NOW + timedelta(days=4)
    with transaction(sessions) as session:
        assert replay(session, ident=event_ids[0], operator="ann", now=later) == [first.id]
        replayed = replay(session, since=NOW - timedelta(hours=2), operator="ann", now=later)
        assert replayed == [second.id]  # failed ones: the replayed and the delivered one stay
        assert take_due(session, now=later, limit=10) == [first.id, second.id]
        again = session.get_one(WebhookEvent, first.id)
        assert again.event_id == event_ids[0]
        assert again.give_up_at == later + timedelta(days=3)
        assert session.scalar(select(func.count()).select_from(AuditEntry)) >= 3
        with pytest.raises(OperationRefused):
            replay(session, ident="evt_unknown", operator="ann", now=later)
