"""The state machine's one home: the table, the rule for what follows, and who may write."""

from __future__ import annotations

import ast
from datetime import UTC, datetime

import pytest

from drip.deliveries.outcomes import Ended, follow_up
from drip.deliveries.progress import RECEIVED
from drip.deliveries.transitions import FINAL, PENDING, TRANSITIONS, Move, transition
from drip.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
)
from drip.sequences.catalog import SequenceCatalog
from tests.conftest import REPO, TEST_SEQUENCES

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _doc_table() -> set[tuple[str, tuple[str, ...], str, str, str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    start = text.index("<!-- transitions:")
    rows = set()
    for line in text[start:].splitlines()[3:]:
        if not line.startswith("| "):
            break
        move, sources, target, by, why = (cell.strip() for cell in line.strip("|").split("|"))
        parsed = () if sources == "(new)" else tuple(s.strip() for s in sources.split(","))
        rows.add((move, parsed, target, by, why))
    return rows


def test_the_documented_transitions_are_the_codes() -> None:
    code = {
        (t.move.value, tuple(s.value for s in t.sources), t.target.value, t.by, t.why)
        for t in TRANSITIONS
    }
    assert _doc_table() == code


def test_every_move_is_in_the_table_once_and_nothing_leaves_sent_or_cancelled() -> None:
    assert sorted(t.move for t in TRANSITIONS) == sorted(Move)
    assert {DeliveryStatus.SENT, DeliveryStatus.CANCELLED} == FINAL


#: Where a write of `deliveries.status` may stand: the package, and the in-memory twin.
ALLOWED = ("drip/deliveries/", "drip/send/stores/memory.py")


def _status_writes(tree: ast.AST) -> list[int]:
    """Lines that write a delivery's status: `update(Delivery)...values(status=...)`, or
    an assignment of a `DeliveryStatus` to a `.status`."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(k.arg == "status" for k in node.keywords)
            and "update(Delivery" in ast.unparse(node.func.value).replace(" ", "")
        ):
            found.append(node.lineno)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in targets) and (
                node.value is not None and "DeliveryStatus" in ast.unparse(node.value)
            ):
                found.append(node.lineno)
    return found


def test_nothing_outside_the_package_writes_a_delivery_status() -> None:
    offenders = []
    for path in sorted((REPO / "drip").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(ALLOWED):
            continue
        lines = _status_writes(ast.parse(path.read_text()))
        offenders += [f"{relative}:{line}" for line in lines]
    assert offenders == []


def test_the_status_write_finder_finds_what_it_looks_for() -> None:
    written = """
update(Delivery).where(x).values(status=DeliveryStatus.SENT)
delivery.status = DeliveryStatus.QUEUED
update(Delivery).values(error=None)
contact.status = ContactStatus.ACTIVE
"""
    assert sorted(_status_writes(ast.parse(written))) == [2, 3]


def _ended(
    move: Move,
    *,
    resend: bool = False,
    step: str = "welcome",
    contact_status: ContactStatus = ContactStatus.ACTIVE,
    enrollment_status: EnrollmentStatus = EnrollmentStatus.ACTIVE,
) -> Ended:
    sequence = SequenceCatalog.load(TEST_SEQUENCES, postal_address="x").get("quick").definition
    delivery = Delivery(id=1, enrollment_id=1, contact_id=1, step_id=step, resend=resend)
    contact = Contact(id=1, email="a@example.com", status=contact_status)
    enrollment = Enrollment(id=1, contact_id=1, sequence_id="quick", status=enrollment_status)
    return Ended(delivery, move, NOW, {}, enrollment, contact, sequence)


@pytest.mark.parametrize(
    ("ended", "plans"),
    [
        (_ended(Move.ACCEPTED), "after welcome"),
        (_ended(Move.SETTLED_FROM_EVENT), "after welcome"),
        (_ended(Move.TOO_LATE), "after welcome"),
        (_ended(Move.STEP_REMOVED), "from the last send"),
        # A resend or a confirmation is off the planned line, however it was settled.
        (_ended(Move.ACCEPTED, resend=True), None),
        (_ended(Move.SETTLED_FROM_EVENT, resend=True), None),
        (_ended(Move.SETTLED_FROM_EVENT, step="_confirm"), None),
        (_ended(Move.STEP_REMOVED, resend=True), None),
        # A send to someone who stopped meanwhile plans nothing.
        (_ended(Move.ACCEPTED, contact_status=ContactStatus.UNSUBSCRIBED), None),
        (_ended(Move.SETTLED_FROM_EVENT, enrollment_status=EnrollmentStatus.CANCELLED), None),
        (_ended(Move.STOPPED), None),
        (_ended(Move.REFUSED), None),
        (_ended(Move.PAUSED), None),
        (_ended(Move.REVIEW_AMBIGUOUS), None),
    ],
)
def test_what_follows_an_ended_row(ended: Ended, plans: str | None) -> None:
    request = follow_up(ended)
    if plans is None:
        assert request is None
    elif plans == "after welcome":
        assert request is not None
        assert (request.sent_step, request.sent_at) == ("welcome", NOW)
    else:
        assert request is not None
        assert (request.sent_step, request.sent_at) == (None, None)


def test_a_step_passed_by_an_import_is_received_and_never_pending() -> None:
    # A new row that moves the subscriber past its step (the progress rule) without ever
    # being due: no claim reads it, and the funnel counts it neither scheduled nor sent.
    passed = transition(Move.BEFORE_IMPORT_START)
    assert passed.sources == ()
    assert passed.target in RECEIVED
    assert passed.target not in (*PENDING, DeliveryStatus.SENT)
