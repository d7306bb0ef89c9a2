"""The referral row: one per referred user, owned here; the program reviews and qualifies it.

`users.referrer_id` is the same fact as the v1 contract shows it (set in the user's own
insert); this row carries the referral's state.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.infra.db import UTCDateTimeType, metadata

APPROVED = "approved"
PENDING_REVIEW = "pending_review"
REJECTED = "rejected"
STATUSES = (APPROVED, PENDING_REVIEW, REJECTED)

# One row per referral: the referred user's id is the referral's id (as in the v1 list).
referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "referrer_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("code", sa.String(32), nullable=False),
    # The code's campaign (core.campaigns): whose rules qualify and reward it.
    sa.Column(
        "campaign_id",
        sa.Integer,
        sa.ForeignKey("campaigns.id"),
        nullable=False,
        server_default=sa.text("1"),
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("review_reasons", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTimeType, nullable=False),
    sa.Column("reviewed_at", UTCDateTimeType, nullable=True),
    sa.Column("qualified_at", UTCDateTimeType, nullable=True),
    # When its qualification was rewarded (not capped): what a campaign's cap counts.
    sa.Column("rewarded_at", UTCDateTimeType, nullable=True),
    # A referral made by joining a Telegram chat (core.invites): when the friend left it
    # before qualifying (`"qualification": "left"`); a rejoin by the same link clears it.
    sa.Column("left_at", UTCDateTimeType, nullable=True),
    sa.CheckConstraint("status IN ('approved', 'pending_review', 'rejected')", name="status"),
    sa.Index("ix_referrals_status", "status", "id"),
    sa.Index("ix_referrals_code_created", "code", "created_at"),
    sa.Index("ix_referrals_rewarded", "campaign_id", "referrer_id", "rewarded_at"),
)


# Per owner and campaign: when their codes there began (the first one made) and until when one
# was live (the latest expiry, or an early deletion). What the funnel's "referrers who had a
# code in the window" counts, by day, in `code_span_days`, so that read never scans codes.
code_spans = sa.Table(
    "code_spans",
    metadata,
    sa.Column(
        "owner_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), primary_key=True),
    sa.Column("began_at", UTCDateTimeType, nullable=False),
    sa.Column("until", UTCDateTimeType, nullable=False),
)

# Per campaign and UTC day: how many owners' spans began that day, and how many end that day.
code_span_days = sa.Table(
    "code_span_days",
    metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),  # a counter: no foreign key
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("began", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("ended", sa.Integer, nullable=False, server_default=sa.text("0")),
    info={"hot": True},  # every change shares its rows: written last
)
