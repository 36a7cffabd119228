"""Clicks on tracked links (`/l/{token}`): one row per (delivery, link, human or machine).

The unique key makes a click count once per (delivery, link) however often it is
followed; a machine's request (`drip.clicks.rule`) is kept apart, so it never takes the
place of a person's click nor counts as one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from drip.db import utcnow
from drip.models.base import Base, BigId, UTCDateTime


class LinkClick(Base):
    """A click on a tracked link, once per (delivery, link, person or machine), with a count."""

    __tablename__ = "link_clicks"
    __table_args__ = (
        UniqueConstraint("delivery_id", "link_index", "human"),
        Index("ix_link_clicks_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    #: The link's position among the email's tracked links, from 0.
    link_index: Mapped[int] = mapped_column(Integer)
    #: Where the link led (UTM tags included).
    url: Mapped[str] = mapped_column(Text)
    #: A person's click; False for a link scanner's or a prefetch's request.
    human: Mapped[bool] = mapped_column(Boolean)
    #: Why a machine click was judged so (`head`, `scanner`, `too_soon`); None for a person.
    machine_reason: Mapped[str | None] = mapped_column(String(16))
    #: The first such click; later ones add to `count` only.
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=1)
