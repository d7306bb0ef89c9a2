"""The program's tables: conversions, the rewards ledger, and the
counters stats and the leaderboard read (kept by the transaction of every change that moves
them, so a read costs what the window holds, never a count of all referrals).

Plain SQLAlchemy tables on the shared metadata: several have composite keys, and every read
and write here is one statement that a model would only wrap.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.infra.db import Points, UTCDateTimeType, metadata

# A conversion's amount: at most this many decimals, below AMOUNT_MAX, stored exactly.
AMOUNT_PLACES = 4
AMOUNT_MAX = 10**11
# The most points one grant or adjustment moves: no sum of them overflows a 64-bit balance.
POINTS_MAX = 10**9

conversions = sa.Table(
    "conversions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    # The caller's own id of the event: the same one twice is the same conversion.
    sa.Column("external_id", sa.String(128), nullable=False, unique=True),
    # Exact to AMOUNT_PLACES decimals on every database (SQLite stores a double: the bound on
    # amounts keeps them within its 15 exact digits).
    sa.Column("amount", sa.Numeric(18, AMOUNT_PLACES), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("referral_qualified", sa.Boolean, nullable=False, server_default=sa.false()),
    # It qualified the referral past its campaign's cap: no rewards.
    sa.Column("capped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTimeType, nullable=False),
    sa.Column("refunded_at", UTCDateTimeType, nullable=True),
    sa.Column("refund_reason", sa.String(200), nullable=True),
    sa.Index("ix_conversions_user_id", "user_id"),
)

# The ledger: a row per grant or adjustment. A grant is `pending` through its campaign's
# hold, then `available` (a job at `available_at`), unless a refund revokes it first; the
# row's points never change. Balances are the sums, kept in `reward_balances`.
PENDING = "pending"
AVAILABLE = "available"
REVOKED = "revoked"
REWARD_STATUSES = (PENDING, AVAILABLE, REVOKED)

rewards = sa.Table(
    "rewards",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("points", Points, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default=AVAILABLE),
    sa.Column("referral_id", sa.Integer, nullable=True),
    sa.Column("conversion_id", sa.Integer, nullable=True),
    sa.Column(
        "campaign_id",
        sa.Integer,
        sa.ForeignKey("campaigns.id"),
        nullable=False,
        server_default=sa.text("1"),
    ),
    # The qualified-referral count a milestone bonus paid for.
    sa.Column("milestone", sa.Integer, nullable=True),
    sa.Column("note", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTimeType, nullable=False),
    sa.Column("available_at", UTCDateTimeType, nullable=False),
    sa.Column("revoked_at", UTCDateTimeType, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'available', 'revoked')", name="status"),
    sa.Index("ix_rewards_user", "user_id", "id"),
    # One qualification (its conversion) earns each of its rewards once, however many
    # conversions or approvals race; a refund that undoes it lets a later one earn again.
    sa.Index("uq_rewards_conversion_reason", "conversion_id", "reason", unique=True),
    # A milestone pays once per referrer and campaign, whatever races to reach it.
    sa.Index("uq_rewards_milestone", "user_id", "campaign_id", "milestone", unique=True),
)

reward_balances = sa.Table(
    "reward_balances",
    metadata,
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    # What may be spent: available rewards and adjustments.
    sa.Column("balance", Points, nullable=False, server_default=sa.text("0")),
    # Points in hold (pending rewards).
    sa.Column("pending", Points, nullable=False, server_default=sa.text("0")),
    # Redemptions and corrections may not take a balance below zero.
    sa.CheckConstraint("balance >= 0", name="not_negative"),
    sa.CheckConstraint("pending >= 0", name="pending_not_negative"),
)

# Per referrer: the totals their stats show.
referrer_stats = sa.Table(
    "referrer_stats",
    metadata,
    sa.Column(
        "referrer_id",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("approved", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("pending_review", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("rejected", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("qualified", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("link_opens", sa.Integer, nullable=False, server_default=sa.text("0")),
)

# Per referrer and UTC day of the sign-up: every referral made that day, and those approved.
referrer_days = sa.Table(
    "referrer_days",
    metadata,
    sa.Column(
        "referrer_id",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("referrals", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("approved", sa.Integer, nullable=False, server_default=sa.text("0")),
    # The leaderboard reads a window of days across referrers: from the index alone.
    sa.Index("ix_referrer_days_day", "day", "referrer_id", "approved"),
)

# Per UTC day: the program overview.
program_days = sa.Table(
    "program_days",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("signups", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("referred", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("qualified", sa.Integer, nullable=False, server_default=sa.text("0")),
    info={"hot": True},  # every change shares its rows: written last
)

# One row (id 1): the program's totals.
program_totals = sa.Table(
    "program_totals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("users", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("referred", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("pending_review", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("qualified", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("rewards_points", Points, nullable=False, server_default=sa.text("0")),
    info={"hot": True},  # every change shares its rows: written last
)


# Per referrer and campaign: their referrals, and their rewarded qualifications (what
# milestones count). Written first by a sign-up (the code's claim queues those), its row is
# what one referrer's concurrent qualifications in a campaign queue on, so a cap is exact.
referrer_campaigns = sa.Table(
    "referrer_campaigns",
    metadata,
    sa.Column(
        "referrer_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("campaign_id", sa.Integer, primary_key=True),  # a counter: no foreign key
    sa.Column("referrals", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("qualified", sa.Integer, nullable=False, server_default=sa.text("0")),
)

# Per campaign and UTC day: the funnel (each counter on the day its change happened;
# `pending_review` on the sign-up's day, taken back when the referral is decided).
FUNNEL_COUNTS = (
    "link_opens",
    "signups",
    "qualified",
    "rewarded",
    "pending_review",
    "rejected",
    "points_granted",
    "points_revoked",
)
campaign_days = sa.Table(
    "campaign_days",
    metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),  # a counter: no foreign key
    sa.Column("day", sa.Date, primary_key=True),
    *(
        sa.Column(
            name,
            Points if name.startswith("points") else sa.Integer,
            nullable=False,
            server_default=sa.text("0"),
        )
        for name in FUNNEL_COUNTS
    ),
    info={"hot": True},  # every change shares its rows: written last
)

# Per campaign and UTC day of qualification: how many took `hours` whole hours from sign-up
# (the funnel's median without reading a referral).
campaign_qualify_hours = sa.Table(
    "campaign_qualify_hours",
    metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),  # a counter: no foreign key
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("hours", sa.Integer, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, server_default=sa.text("0")),
    info={"hot": True},  # every change shares its rows: written last
)
