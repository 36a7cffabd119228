"""The funnel's counts, kept in the transaction of every change (`drip.reports.counting`).

`delivery_count_deltas` is appended to by triggers (+1 for a row's new key, -1 for its
old one), never updated, so concurrent workers never wait on one another's counter row;
the scheduler folds it into `delivery_counts`. `funnel_attributions` holds what each
enrolment or delivery contributes to the columns a plain status cannot say (unsubscribed,
converted, human clicks), so a change can take back exactly what it had added.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from drip.models.base import Base, BigId


class DeliveryCount(Base):
    """Planned deliveries (not resends) per day created (UTC), sequence, step and measure:
    a delivery status, or an attributed column (`drip.reports.counting.MEASURES`)."""

    __tablename__ = "delivery_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sequence_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class DeliveryCountDelta(Base):
    """A change to `delivery_counts` not yet folded into it: +n or -n for one key."""

    __tablename__ = "delivery_count_deltas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    sequence_id: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
    measure: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(BigInteger)


class FunnelAttribution(Base):
    """One delivery counted under an attributed measure (`unsubscribed`, `converted`,
    `human_click`), with the key it was counted under; deleted with its delivery."""

    __tablename__ = "funnel_attributions"
    __table_args__ = (Index("ix_funnel_attributions_enrollment", "enrollment_id"),)

    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    measure: Mapped[str] = mapped_column(String(16), primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    sequence_id: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
