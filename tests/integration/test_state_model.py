"""A model of the delivery state machine, searched by Hypothesis.

A `RuleBasedStateMachine` drives drip's real code (signup, the scheduler and its recovery
jobs, the sender, unsubscribes, pauses, operator resends and retries, live edits of the
sequence files) on one real PostgreSQL database per run, through random interleavings
with a clock the rules move, a provider whose answer to each call a rule chooses
(accepted, a transient failure, a lost answer after accepting, a refusal, a worker killed
before or after the call) and `processed` events that come early, late or never.

After every step it checks the promises:

- no delivery row (one per (enrollment, step, resend number)) is accepted by the provider
  twice, unless it was sent again blind: by the scheduler after its wait ran out with no
  event (the documented cost of DRIP_AMBIGUOUS_POLICY=resend; never before that wait), or
  by an operator's retry of a row failed for review with no event;
- a row the scheduler takes out of `sending` had no `processed` event (else it is settled
  as sent) and waited its own lease: SEND_LEASE after a claim, AMBIGUOUS_WAIT after a
  lost answer;
- nothing is accepted for a contact after an acknowledged unsubscribe (of that sequence,
  for leaving one), but a confirmation answering a signup made after it;
- an unsubscribe or leave leaves nothing of the contact (or sequence) scheduled or queued;
- at most one pending planned row per enrollment; a row says sent only if the provider
  accepted it; a failed, cancelled or skipped row says why; a failed planned row is the
  last of its line; only the end of a planned row moves a line on (plans the next step or
  completes the enrollment): a resend or a confirmation never does;
- `drip sequences plan` (position and next step of each active enrollment) and
  `drip stats` (pending and sent per step) read progress as the worker does;
- goals (`quick` ends on `purchased`): after a goal event's 202 no planned email of the
  run it ends is accepted, rows claimed or in `sending` included; after it is applied,
  none of that run at all (a resend neither), the run is no longer active and nothing of
  its line is pending;
- triggers (`other` starts on `purchased`): applying the event enrolls a subscribed
  contact with no run, leaves an open run alone, and begins a finished one again only as
  the run's `reentry:` (never, always, after a day) allows;
- conditions (`when:` on `quick`'s steps, over events and the `plan` attribute): a step
  whose condition the model's record says is false at its send-time check is skipped
  with the reason and its line moves on; one whose condition is true is sent, once;
- the daily cap (DRIP_MAX_EMAILS_PER_DAY, 2 in some runs): a contact's planned emails
  accepted in a batch fit in what its sends of the last day leave; a capped row is
  postponed, never dropped.

At the end the provider accepts everything while time runs on: every row must settle
(sent, skipped, cancelled or failed with a reason), none stuck.

The world and its shared steps are in `state_model_world`, the checks in
`state_model_checks`, the rules in `state_model_rules` (delivery) and
`state_model_reactions` (goals, triggers, conditions). Bugs this search found are pinned
by the directed tests at the end of this file.

`make test` runs a short search; `make fuzz` a long one (DRIP_STATE_MODEL_PROFILE=fuzz).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from drip.config import AmbiguousPolicy
from tests.integration.state_model_checks import Row, S, read_rows
from tests.integration.state_model_parts import AMBIGUOUS_WAIT, GOAL, Answer
from tests.integration.state_model_reactions import ReactionRules
from tests.integration.state_model_rules import DeliveryRules
from tests.integration.state_model_world import REACHED, Databases, ModelWorld

#: The default search fits `make test` (well under a minute); `make fuzz` goes deeper.
settings.register_profile(
    "state-model",
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "state-model-fuzz",
    max_examples=int(os.environ.get("DRIP_FUZZ_EXAMPLES", "300")),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = (
    "state-model-fuzz"
    if os.environ.get("DRIP_STATE_MODEL_PROFILE", "").strip() == "fuzz"
    else "state-model"
)
#: DRIP_STATE_MODEL_SHRINK=0 reports the first failing run as found, without the minutes
#: Hypothesis spends shrinking it (each run builds a database).
SHRINK = os.environ.get("DRIP_STATE_MODEL_SHRINK", "1").strip() != "0"


class DeliveryModel(DeliveryRules, ReactionRules):
    """drip's delivery state machine, goals, triggers and conditions under random
    interleavings; see the module docstring."""


@pytest.mark.integration
@pytest.mark.timeout(0 if PROFILE.endswith("fuzz") else 900)  # a found bug takes minutes to shrink
def test_the_delivery_state_machine_keeps_its_promises(pg_template: str) -> None:
    """Random interleavings of every actor keep every promise (see the module docstring)."""
    DeliveryModel.databases = Databases(pg_template)
    REACHED.clear()
    chosen = settings.get_profile(PROFILE)
    if not SHRINK:
        chosen = settings(chosen, phases=[p for p in Phase if p is not Phase.shrink])
    try:
        run_state_machine_as_test(DeliveryModel, settings=chosen)
    finally:
        DeliveryModel.databases.close()
    if os.environ.get("DRIP_STATE_MODEL_STATS"):
        print("\n".join(f"{n:6d}  {what}" for what, n in sorted(REACHED.items())))


@pytest.mark.integration
def test_a_retry_never_resends_a_row_reported_processed(pg_template: str) -> None:
    """Found by the search: `drip retry` queued a row failed for review again although
    the provider's processed event for it had come since, and the worker sent it twice."""
    # Given a send whose answer was lost, failed for review when no event came in time
    DeliveryModel.databases = Databases(pg_template)
    model = DeliveryModel()
    try:
        model.start(policy=AmbiguousPolicy.REVIEW, signups=[(0, "other")])
        model.worker_sends(answers=[Answer.LOST])
        model.time_passes(seconds=AMBIGUOUS_WAIT + 1)
        model.scheduler_tick()
        # When its processed event comes late and an operator retries the failed rows
        model.processed_event(pick=0)
        model.operator_retry(status=S.FAILED)
        model.worker_sends(answers=[Answer.ACCEPT])
        # Then the provider was not given it a second time
        model.promises_hold()
    finally:
        model.broken = True  # no drain: this test is about the one row
        model.teardown()
        DeliveryModel.databases.close()


@pytest.mark.integration
def test_a_resend_never_reaches_who_left_the_sequence(pg_template: str) -> None:
    """Found by the search: leaving a sequence after its last email left the enrollment
    completed, and a resend of that sequence passed the send-time check."""
    # Given a subscriber who received the whole one-step sequence, then left it
    DeliveryModel.databases = Databases(pg_template)
    model = DeliveryModel()
    try:
        model.start(policy=AmbiguousPolicy.RESEND, signups=[(0, "other")])
        model.healthy_hour()
        model.unsubscribe(pick=0, everything=False)
        # When an operator resends its step
        model.operator_resend(pick=0, step=0, finished=False)
        model.healthy_hour()
        # Then nothing of that sequence was accepted after the leave
        model.promises_hold()
    finally:
        model.broken = True
        model.teardown()
        DeliveryModel.databases.close()


@pytest.mark.integration
def test_a_trigger_never_brings_back_who_left_the_sequence(pg_template: str) -> None:
    """Found by the model: a trigger began a new run of a sequence its subscriber had left
    by the unsubscribe page (with `reentry: always`), and its email went out."""
    # Given a subscriber who received the one-step sequence `other`, then left it
    DeliveryModel.databases = Databases(pg_template)
    model = DeliveryModel()
    try:
        model.start(policy=AmbiguousPolicy.RESEND, signups=[(0, "other")], reentry="always")
        model.healthy_hour()
        model.unsubscribe(pick=0, everything=False)
        # When another app reports the event that triggers `other`
        model.another_app_posts_an_event(who=0, name=GOAL, lost=False)
        model.healthy_hour()
        # Then no run began, and nothing of `other` was accepted after the leave
        model.promises_hold()
    finally:
        model.broken = True
        model.teardown()
        DeliveryModel.databases.close()


@pytest.mark.integration
def test_one_batch_keeps_within_the_daily_cap(pg_template: str) -> None:
    """Found by the model: with DRIP_MAX_EMAILS_PER_DAY=2, a contact with one email sent
    today got two more planned emails from one batch (three in a day)."""
    # Given a cap of 2 and a subscriber of `quick` whose email 1 went
    DeliveryModel.databases = Databases(pg_template)
    model = DeliveryModel()
    try:
        model.start(policy=AmbiguousPolicy.RESEND, signups=[(0, "quick")], daily_cap=2)
        model.worker_sends(answers=[Answer.ACCEPT])
        # When, an hour later, one batch holds their `other` email 1 and `quick` email 2
        model.time_passes(seconds=3600.0)
        model.signup(0, "other")
        model.next_due()
        with model.sessions() as session:
            recent = model.sent_in_the_last_day(session)
        claimable = [r for r in _queued(model) if r.contact_id == 1]
        accepted = len(model.ledger.accepted)
        model.work_all()
        # Then only one of them went today
        planned = {d for _, d, _ in model.ledger.accepted[accepted:]} & {r.id for r in claimable}
        assert recent[1] + len(planned) <= 2, f"{recent[1]} sent, then {len(planned)} more"
    finally:
        model.broken = True
        model.teardown()
        DeliveryModel.databases.close()


def _queued(model: ModelWorld) -> list[Row]:
    with model.sessions() as session:
        return [r for r in read_rows(session) if r.status is S.QUEUED and r.on_the_line]
