"""The state-machine model's rules for sequences that react (`test_state_model.py`):
other apps post events (`POST /v1/events`: stored, then applied by the
`drip.apply_contact_events` actor, or by the scheduler's recovery when its message is
lost) and set attributes (`PATCH /v1/contacts/{email}`), at any moment, also between a
batch's claim and its send-time checks.

`quick` ends on the goal event (`exit:`); `other` starts on it (`trigger:`, with the run's
`reentry:`); `quick`'s second and third steps may carry `when:` conditions over the
events and attributes. What each should do is computed from the model's own record
(`Known`, the reentry policy), never by drip's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.contacts.attributes import merge_attributes
from drip.contacts.privacy import find_contact
from drip.db import transaction
from drip.events.contact_apply import apply_contact_event, sequence_reaction
from drip.events.contact_store import store_contact_event
from drip.models import Contact, ContactEvent, Enrollment, EnrollmentStatus
from tests.integration.state_model_checks import GoalMark, Row, highest_id, read_rows
from tests.integration.state_model_parts import GOAL, QUEUE_LEASE, SEEN, Answer
from tests.integration.state_model_world import PEOPLE, ModelWorld, email_of, event, guarded

#: Runs that may still send: a goal ends them, a trigger does not restart them.
OPEN = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PENDING)

#: The values of the attribute conditions read (None deletes it).
PLANS = st.sampled_from(["pro", "free", None])


@dataclass(frozen=True)
class RunState:
    """A contact's run of the triggered sequence, before an event is applied."""

    subscribed: bool
    status: EnrollmentStatus | None
    run: int
    enrolled_at: datetime | None


class ReactionRules(ModelWorld):
    """The rules of goals, triggers and conditions; see the module docstring."""

    @rule(who=st.integers(0, PEOPLE - 1), name=st.sampled_from([GOAL, SEEN]), lost=st.booleans())
    @guarded
    def another_app_posts_an_event(self, who: int, name: str, lost: bool) -> None:
        """`POST /v1/events` for the `who`th person who signed up (anyone, before the first
        signup): stored (the 202), then applied by the actor, or (its message lost) left
        for the scheduler's recovery."""
        people = sorted(set(self.person.values())) or list(range(PEOPLE))
        new_id = self.post_event(people[who % len(people)], name)
        if new_id is not None and not lost:
            self.apply_event(new_id)

    @precondition(lambda self: self.signed_up)
    @rule(
        answers=st.lists(st.sampled_from(list(Answer)), min_size=1, max_size=6),
        pick=st.integers(0, 100),
        name=st.sampled_from([GOAL, SEEN]),
        lost=st.booleans(),
    )
    @guarded
    def an_event_during_a_send(
        self, answers: list[Answer], pick: int, name: str, lost: bool
    ) -> None:
        """A worker claims a batch; before its send-time checks, an event is posted for
        the subscriber of one of its rows (the goal, or what a condition reads); after
        the batch the actor applies it (or its message was lost)."""
        posted: list[int] = []

        def post(row: Row, public_id: str) -> None:
            new_id = self.post_event(self.person[row.contact_id], name)
            posted.extend([new_id] if new_id is not None else [])

        self.during_a_send(answers, pick, post)
        if posted and not lost:
            self.apply_event(posted[0])

    @rule(who=st.integers(0, PEOPLE - 1), plan=PLANS)
    @guarded
    def another_app_sets_an_attribute(self, who: int, plan: str | None) -> None:
        """`PATCH /v1/contacts/{email}` sets (or deletes) the `plan` attribute of person
        `who` (a 404 for one not known)."""
        self.set_plan(who, plan)

    @precondition(lambda self: self.signed_up)
    @rule(
        answers=st.lists(st.sampled_from(list(Answer)), min_size=1, max_size=6),
        pick=st.integers(0, 100),
        plan=PLANS,
    )
    @guarded
    def an_attribute_changes_during_a_send(
        self, answers: list[Answer], pick: int, plan: str | None
    ) -> None:
        """A worker claims a batch; before its send-time checks, the `plan` attribute of
        the subscriber of one of its rows changes."""
        self.during_a_send(
            answers, pick, lambda row, _: self.set_plan(self.person[row.contact_id], plan)
        )

    # Steps ------------------------------------------------------------------------------

    def set_plan(self, who: int, plan: str | None) -> None:
        """What the API's PATCH does: find the contact locked, merge the change."""
        with transaction(self.sessions) as session:
            contact = find_contact(session, email_of(who), lock=True)
            if contact is None:
                event("attribute: 404")
                return
            contact.attributes = merge_attributes(contact.attributes or {}, {"plan": plan})
        if plan is None:
            self.known[who].attributes.pop("plan", None)
        else:
            self.known[who].attributes["plan"] = plan

    def post_event(self, who: int, name: str) -> int | None:
        """What the API's POST /v1/events does before its 202: store the event under the
        contact's lock and commit. The goals it reaches are noted as acknowledged."""
        now = self.clock()
        with transaction(self.sessions) as session:
            new_id = store_contact_event(
                session,
                client_id=f"{name}-{who}-{self.ledger.tick()}",
                email=email_of(who),
                name=name,
                properties={},
                occurred_at=now,
                now=now,
            )
            assert new_id is not None
            runs = self._goal_runs_of(session, [new_id], applied=False)
        self.known[who].events.add(name)
        at = self.ledger.tick()
        for goal in runs.get(new_id, []):
            self.goals.append(GoalMark(at, goal.contact_id, goal.enrollment_id, goal.run, False))
            event("goal: acknowledged for an open run")
        return new_id

    def apply_event(self, event_id: int) -> None:
        """What the `drip.apply_contact_events` actor does with one event (on the model's
        clock); then check that a trigger enrolled as the reentry policy says."""
        now = self.clock()
        with self.sessions() as session:
            expected = self.goal_runs(session)
            contact_id = session.get_one(ContactEvent, event_id).contact_id
            name = session.get_one(ContactEvent, event_id).name
            before = _run_state(session, contact_id) if contact_id else None
        with transaction(self.sessions) as session:
            queued = apply_contact_event(
                session,
                event_id,
                react=sequence_reaction(),
                catalog=self.catalog,
                now=now,
                queue_lease=QUEUE_LEASE,
            )
        if queued:
            self.enqueue(queued)
        self.note_applied_events(expected)
        if before is not None and contact_id is not None and name == GOAL:
            self._check_trigger(contact_id, before, now)

    def goal_runs(self, session: Session) -> dict[int, list[GoalMark]]:
        """For each contact event not applied yet, the runs it ends when applied now."""
        pending = session.scalars(select(ContactEvent.id).where(ContactEvent.applied_at.is_(None)))
        return self._goal_runs_of(session, list(pending), applied=True)

    def _goal_runs_of(
        self, session: Session, event_ids: list[int], *, applied: bool
    ) -> dict[int, list[GoalMark]]:
        """The open runs of a sequence naming each event as its goal, begun at or before it."""
        found: dict[int, list[GoalMark]] = {}
        for contact_event in session.scalars(
            select(ContactEvent).where(ContactEvent.id.in_(event_ids))
        ):
            if contact_event.contact_id is None:
                continue
            found[contact_event.id] = [
                GoalMark(-1, e.contact_id, e.id, e.run, applied)
                for e in session.scalars(
                    select(Enrollment).where(Enrollment.contact_id == contact_event.contact_id)
                )
                if e.status in OPEN
                and e.sequence_id in self.catalog
                and contact_event.name in self.catalog.get(e.sequence_id).definition.goals
                and e.enrolled_at <= contact_event.occurred_at
            ]
        return found

    def note_applied_events(self, expected: dict[int, list[GoalMark]]) -> set[int]:
        """Note the events applied since last asked, with the goals `expected` says they
        reached, and check each left nothing of its runs pending; their contacts' ids."""
        with self.sessions() as session:
            applied = session.execute(
                select(ContactEvent.id, ContactEvent.contact_id).where(
                    ContactEvent.applied_at.is_not(None), ContactEvent.id.not_in(self.applied)
                )
            ).all()
            at, highest = self.ledger.tick(), highest_id(session)
            for event_id, _ in applied:
                self.applied.add(event_id)
                for goal in expected.get(event_id, []):
                    self.goals.append(
                        GoalMark(at, goal.contact_id, goal.enrollment_id, goal.run, True, highest)
                    )
                    event("goal: applied to an open run")
                    left = [
                        (r.id, r.step_id, r.status.value)
                        for r in read_rows(session)
                        if (r.enrollment_id, r.run) == (goal.enrollment_id, goal.run)
                        and r.status.value in ("scheduled", "queued")
                    ]
                    assert not left, f"an applied goal left rows of its run pending: {left}"
        return {contact_id for _, contact_id in applied if contact_id is not None}

    def _check_trigger(self, contact_id: int, before: RunState, now: datetime) -> None:
        """The goal event is `other`'s trigger: a subscribed contact with no run of it is
        enrolled; one whose run is open, or who left it, is left alone; one whose run
        finished starts again only when the run's `reentry:` allows it."""
        with self.sessions() as session:
            after = _run_state(session, contact_id)
            rows = [r for r in read_rows(session) if r.contact_id == contact_id]
        if not before.subscribed or before.status in (*OPEN, EnrollmentStatus.CANCELLED):
            expected = "none"  # stopped, in a run, or left this sequence
        elif before.status is None:
            expected = "first"
        else:
            assert before.enrolled_at is not None
            expected = "again" if self._may_reenter(before.enrolled_at, now) else "none"
        event(f"trigger: {expected} (was {before.status})")
        if expected == "none":
            assert (after.status, after.run) == (before.status, before.run), (
                f"a trigger changed the run of contact {contact_id} from {before} to {after} "
                f"(reentry {self.reentry!r})"
            )
            return
        run = 0 if expected == "first" else before.run + 1
        assert (after.status, after.run, after.enrolled_at) == (
            EnrollmentStatus.ACTIVE,
            run,
            now,
        ), (
            f"a trigger should have begun run {run} for contact {contact_id} "
            f"(was {before}, reentry {self.reentry!r}); it is {after}"
        )
        first = [r for r in rows if r.sequence_id == "other" and r.run == run and r.on_the_line]
        assert first, f"the run a trigger began for contact {contact_id} has no first email"

    def _may_reenter(self, last_began: datetime, now: datetime) -> bool:
        """The run's `reentry:` policy, as the model reads it."""
        if isinstance(self.reentry, dict):
            return now - last_began >= timedelta(days=1)
        return self.reentry == "always"


def _run_state(session: Session, contact_id: int) -> RunState:
    contact = session.get_one(Contact, contact_id)
    run = session.scalars(
        select(Enrollment).where(
            Enrollment.contact_id == contact_id, Enrollment.sequence_id == "other"
        )
    ).one_or_none()
    if run is None:
        return RunState(contact.is_subscribed, None, 0, None)
    return RunState(contact.is_subscribed, run.status, run.run, run.enrolled_at)
