"""Campaigns and the reward lifecycle (contract v1.2).

Every code, referral and reward made before this revision belongs to the default campaign
(id 1, key `default`), whose stored rules are empty: it follows `REWARD_*` and `REVIEW_*`
until an operator sets its rules. Rewards granted before are `available` from their grant
time (v1.1 had no hold); a referral reward granted at approval learns the conversion that
qualified it, so one qualification's rewards are unique by (conversion, reason).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP, is_mysql  # microseconds on every database (MySQL's DATETIME(6))

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POINTS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEFAULT = sa.text("1")  # the default campaign's id


def _campaign_column() -> sa.Column[int]:
    return sa.Column("campaign_id", sa.Integer(), server_default=DEFAULT, nullable=False)


def _utc_day(column: sa.ColumnElement[object]) -> sa.ColumnElement[object]:
    """The UTC day of a stored moment, as each database spells it."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)  # SQLite and MySQL store UTC without a zone


def upgrade() -> None:
    mysql = is_mysql(op.get_bind().dialect.name)
    campaigns = op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_at", TIMESTAMP, nullable=True),
        sa.Column("ends_at", TIMESTAMP, nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'ended')", name=op.f("ck_campaigns_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("key", name=op.f("uq_campaigns_key")),
    )
    now = sa.func.current_timestamp()
    op.execute(
        campaigns.insert().from_select(
            ["id", "key", "name", "status", "rules", "created_at", "updated_at"],
            sa.select(
                sa.literal(1),
                sa.literal("default"),
                sa.literal("Default"),
                sa.literal("active"),
                # No rules stored: it follows the settings (PostgreSQL types the text as JSON).
                sa.cast(sa.literal("{}"), sa.JSON)
                if op.get_bind().dialect.name == "postgresql"
                else sa.literal("{}"),
                now,
                now,
            ),
        )
    )

    if op.get_bind().dialect.name == "postgresql":  # the id given above: the serial moves on
        op.execute("SELECT setval(pg_get_serial_sequence('campaigns', 'id'), 1)")

    # Codes: one live code per owner *per campaign*.
    op.drop_index("uq_referral_codes_owner_live", table_name="referral_codes")
    with op.batch_alter_table("referral_codes") as batch:
        batch.add_column(_campaign_column())
        batch.create_foreign_key(
            "fk_referral_codes_campaign_id_campaigns", "campaigns", ["campaign_id"], ["id"]
        )
    owner = ["live_owner_id"] if mysql else ["owner_id"]
    op.create_index(
        "uq_referral_codes_owner_live",
        "referral_codes",
        [*owner, "campaign_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    # The funnel's referrers with a code in a window: each owner's span of codes, by day.
    spans = op.create_table(
        "code_spans",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("began_at", TIMESTAMP, nullable=False),
        sa.Column("until", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_code_spans_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_code_spans_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("owner_id", "campaign_id", name=op.f("pk_code_spans")),
    )
    span_days = op.create_table(
        "code_span_days",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("began", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("ended", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "day", name=op.f("pk_code_span_days")),
    )
    codes = sa.table(
        "referral_codes",
        sa.column("owner_id"),
        sa.column("created_at"),
        sa.column("expires_at"),
        sa.column("closed_at"),
    )
    ends = sa.case(
        (sa.and_(codes.c.closed_at.is_not(None), codes.c.closed_at < codes.c.expires_at),
         codes.c.closed_at),
        else_=codes.c.expires_at,
    )
    op.execute(
        spans.insert().from_select(
            ["owner_id", "campaign_id", "began_at", "until"],
            sa.select(
                codes.c.owner_id, sa.literal(1), sa.func.min(codes.c.created_at), sa.func.max(ends)
            ).group_by(codes.c.owner_id),
        )
    )
    edges = sa.union_all(
        sa.select(
            _utc_day(spans.c.began_at).label("day"),
            sa.literal(1).label("began"),
            sa.literal(0).label("ended"),
        ),
        sa.select(
            _utc_day(spans.c.until).label("day"),
            sa.literal(0).label("began"),
            sa.literal(1).label("ended"),
        ),
    ).subquery("edges")
    op.execute(
        span_days.insert().from_select(
            ["campaign_id", "day", "began", "ended"],
            sa.select(
                sa.literal(1), edges.c.day, sa.func.sum(edges.c.began), sa.func.sum(edges.c.ended)
            ).group_by(edges.c.day),
        )
    )

    # Referrals: in their code's campaign; `rewarded_at` is what a cap counts.
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(_campaign_column())
        batch.add_column(sa.Column("rewarded_at", TIMESTAMP, nullable=True))
        batch.create_foreign_key(
            "fk_referrals_campaign_id_campaigns", "campaigns", ["campaign_id"], ["id"]
        )
    op.create_index(
        "ix_referrals_rewarded", "referrals", ["campaign_id", "referrer_id", "rewarded_at"]
    )

    # Conversions: capped, refunded.
    with op.batch_alter_table("conversions") as batch:
        batch.add_column(
            sa.Column("capped", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("refunded_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("refund_reason", sa.String(length=200), nullable=True))

    # Rewards: a status, when it becomes available, its campaign, the milestone it pays.
    op.drop_index("uq_rewards_referral_reason", table_name="rewards")
    with op.batch_alter_table("rewards") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), server_default="available", nullable=False)
        )
        batch.add_column(sa.Column("available_at", TIMESTAMP, nullable=True))
        batch.add_column(_campaign_column())
        batch.add_column(sa.Column("milestone", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("revoked_at", TIMESTAMP, nullable=True))
    rewards = sa.table(
        "rewards",
        sa.column("id"),
        sa.column("referral_id"),
        sa.column("conversion_id"),
        sa.column("created_at"),
        sa.column("available_at"),
    )
    conversions = sa.table(
        "conversions", sa.column("id"), sa.column("user_id"), sa.column("referral_qualified")
    )
    qualifying = (
        sa.select(sa.func.min(conversions.c.id))
        .where(
            conversions.c.user_id == rewards.c.referral_id,
            conversions.c.referral_qualified == sa.true(),
        )
        .scalar_subquery()
    )
    op.execute(
        rewards.update()
        .where(rewards.c.conversion_id.is_(None), rewards.c.referral_id.is_not(None))
        .values(conversion_id=qualifying)
    )
    op.execute(rewards.update().values(available_at=rewards.c.created_at))
    with op.batch_alter_table("rewards") as batch:
        batch.alter_column("available_at", existing_type=TIMESTAMP, nullable=False)
        batch.create_check_constraint(
            op.f("ck_rewards_status"), "status IN ('pending', 'available', 'revoked')"
        )
        batch.create_foreign_key(
            "fk_rewards_campaign_id_campaigns", "campaigns", ["campaign_id"], ["id"]
        )
    # One qualification's rewards, each once; a milestone once per referrer and campaign.
    op.create_index(
        "uq_rewards_conversion_reason", "rewards", ["conversion_id", "reason"], unique=True
    )
    op.create_index(
        "uq_rewards_milestone", "rewards", ["user_id", "campaign_id", "milestone"], unique=True
    )

    with op.batch_alter_table("reward_balances") as batch:
        # A grant in hold writes its row's `pending` alone.
        batch.alter_column(
            "balance", existing_type=POINTS, existing_nullable=False, server_default=sa.text("0")
        )
        batch.add_column(sa.Column("pending", POINTS, server_default=sa.text("0"), nullable=False))
        batch.create_check_constraint(op.f("ck_reward_balances_pending_not_negative"), "pending >= 0")

    # Referrals of `referrals` already rewarded count against a cap from their qualification.
    referrals = sa.table(
        "referrals",
        sa.column("status"),
        sa.column("qualified_at"),
        sa.column("rewarded_at"),
    )
    op.execute(
        referrals.update()
        .where(referrals.c.status == "approved", referrals.c.qualified_at.is_not(None))
        .values(rewarded_at=referrals.c.qualified_at)
    )

    # Per referrer and campaign: their referrals, and the rewarded qualifications milestones
    # count. Made by the first sign-up, its row is what one referrer's concurrent
    # qualifications queue on (the cap is exact).
    op.create_table(
        "referrer_campaigns",
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("referrals", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("qualified", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["referrer_id"],
            ["users.id"],
            name=op.f("fk_referrer_campaigns_referrer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referrer_id", "campaign_id", name=op.f("pk_referrer_campaigns")),
    )
    op.execute(
        "INSERT INTO referrer_campaigns (referrer_id, campaign_id, referrals, qualified) "
        "SELECT referrer_id, 1, COUNT(*), "
        "SUM(CASE WHEN qualified_at IS NOT NULL AND status = 'approved' THEN 1 ELSE 0 END) "
        "FROM referrals GROUP BY referrer_id"
    )

    # The funnel: per campaign and UTC day, and the hours a qualification took. Counters carry
    # no foreign key (as program_days): every change would lock the campaign's row in share.
    op.create_table(
        "campaign_days",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)
            for name in (
                "link_opens",
                "signups",
                "qualified",
                "rewarded",
                "pending_review",
                "rejected",
            )
        ),
        sa.Column("points_granted", POINTS, server_default=sa.text("0"), nullable=False),
        sa.Column("points_revoked", POINTS, server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "day", name=op.f("pk_campaign_days")),
    )
    op.create_table(
        "campaign_qualify_hours",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id", "day", "hours", name=op.f("pk_campaign_qualify_hours")
        ),
    )


def downgrade() -> None:
    mysql = is_mysql(op.get_bind().dialect.name)
    op.drop_table("code_span_days")
    op.drop_table("code_spans")
    op.drop_table("campaign_qualify_hours")
    op.drop_table("campaign_days")
    op.drop_table("referrer_campaigns")
    with op.batch_alter_table("reward_balances") as batch:
        batch.drop_constraint(op.f("ck_reward_balances_pending_not_negative"), type_="check")
        batch.drop_column("pending")
        batch.alter_column(
            "balance", existing_type=POINTS, existing_nullable=False, server_default=None
        )
    op.drop_index("uq_rewards_milestone", table_name="rewards")
    op.drop_index("uq_rewards_conversion_reason", table_name="rewards")
    # Revoked rewards never counted in v1.1's balances; pending ones are dropped with their hold.
    op.execute("DELETE FROM rewards WHERE status <> 'available'")
    with op.batch_alter_table("rewards") as batch:
        batch.drop_constraint("fk_rewards_campaign_id_campaigns", type_="foreignkey")
    with op.batch_alter_table("rewards") as batch:
        batch.drop_constraint(op.f("ck_rewards_status"), type_="check")
        for column in ("revoked_at", "milestone", "campaign_id", "available_at", "status"):
            batch.drop_column(column)
    op.create_index(
        "uq_rewards_referral_reason",
        "rewards",
        ["referral_id", "reason"],
        unique=True,
        postgresql_where=sa.text("referral_id IS NOT NULL"),
        sqlite_where=sa.text("referral_id IS NOT NULL"),
    )
    with op.batch_alter_table("conversions") as batch:
        for column in ("refund_reason", "refunded_at", "capped"):
            batch.drop_column(column)
    # Each foreign key before the index MySQL keeps it on.
    with op.batch_alter_table("referrals") as batch:
        batch.drop_constraint("fk_referrals_campaign_id_campaigns", type_="foreignkey")
    op.drop_index("ix_referrals_rewarded", table_name="referrals")
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("rewarded_at")
        batch.drop_column("campaign_id")
    with op.batch_alter_table("referral_codes") as batch:
        batch.drop_constraint("fk_referral_codes_campaign_id_campaigns", type_="foreignkey")
    op.drop_index("uq_referral_codes_owner_live", table_name="referral_codes")
    # One live code per owner again: each owner keeps the newest of their open codes.
    op.execute(
        "UPDATE referral_codes SET closed_at = created_at WHERE closed_at IS NULL AND id NOT IN "
        "(SELECT newest FROM (SELECT MAX(id) AS newest FROM referral_codes "
        "WHERE closed_at IS NULL GROUP BY owner_id) AS live)"
    )
    with op.batch_alter_table("referral_codes") as batch:
        batch.drop_column("campaign_id")
    op.create_index(
        "uq_referral_codes_owner_live",
        "referral_codes",
        ["live_owner_id"] if mysql else ["owner_id"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.drop_table("campaigns")
