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
    sa.CheckConstraint("status IN ('approved', 'pending_review', 'rejected')", name="status"),
    sa.Index("ix_referrals_status", "status", "id"),
    sa.Index("ix_referrals_code_created", "code", "created_at"),
    sa.Index("ix_referrals_rewarded", "campaign_id", "referrer_id", "rewarded_at"),
)
