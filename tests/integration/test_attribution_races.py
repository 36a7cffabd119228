"""Two transactions that re-attribute the same delivery at once both commit: a person's
first clicks on two links of one email, taken by two API requests together, are both
kept, and the email counts once in the funnel's human clicks."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from drip.db import transaction
from drip.models import Delivery, DeliveryStatus, LinkClick
from drip.runtime import Runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from tests.integration.test_delivery_counts import START, counted, scanned


def test_two_first_clicks_on_one_email_at_once_are_both_kept(runtime: Runtime) -> None:
    # Given a sent email
    with transaction(runtime.sessions) as session:
        enroll_contact(
            session,
            SignupRequest(email="ann@example.com"),
            catalog=runtime.catalog,
            default_sequence="quick",
            now=START,
            queue_lease=30,
        )
        delivery = session.scalars(select(Delivery)).one()
        delivery.status, delivery.sent_at = DeliveryStatus.SENT, START
        delivery_id = delivery.id

    def click(link: int) -> LinkClick:
        return LinkClick(
            delivery_id=delivery_id, link_index=link, url=f"https://x.test/{link}", human=True
        )

    # When a first click on link 0 is written and, before it commits, one on link 1
    first = runtime.sessions()
    first.add(click(0))
    first.flush()
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with transaction(runtime.sessions) as session:
                session.add(click(1))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)  # the second waits on the first's attribution row
    first.commit()
    first.close()
    thread.join(timeout=10.0)
    # Then both clicks are kept, and the email counts once as clicked by a person
    assert failures == []
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LinkClick)) == 2
        assert counted(session)[("quick", "welcome", "human_clicks")] == 1
        assert counted(session) == +scanned(session)
