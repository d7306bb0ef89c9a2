"""The referral program: referrals with a review status, conversions, the rewards ledger,
and the counters behind stats, the leaderboard and the program overview.

Referrals made before this revision become approved referrals, and the counters start from
what the users table says.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP, is_mysql  # microseconds on every database (MySQL's DATETIME(6))

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def upgrade() -> None:
    op.create_table('program_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('signups', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('referred', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('qualified', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_program_days'))
    )
    op.create_table('program_totals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('users', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('referred', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('pending_review', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('qualified', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('rewards_points', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_program_totals'))
    )
    op.create_table('conversions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=4), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('referral_qualified', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_conversions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversions')),
    sa.UniqueConstraint('external_id', name=op.f('uq_conversions_external_id'))
    )
    op.create_index('ix_conversions_user_id', 'conversions', ['user_id'])
    op.create_table('referrals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('review_reasons', sa.JSON(), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('reviewed_at', TIMESTAMP, nullable=True),
    sa.Column('qualified_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint("status IN ('approved', 'pending_review', 'rejected')", name=op.f('ck_referrals_status')),
    sa.ForeignKeyConstraint(['id'], ['users.id'], name=op.f('fk_referrals_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referrer_id'], ['users.id'], name=op.f('fk_referrals_referrer_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals'))
    )
    op.create_index('ix_referrals_code_created', 'referrals', ['code', 'created_at'])
    op.create_index('ix_referrals_status', 'referrals', ['status', 'id'])
    op.create_table('referrer_days',
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('referrals', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('approved', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['referrer_id'], ['users.id'], name=op.f('fk_referrer_days_referrer_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('referrer_id', 'day', name=op.f('pk_referrer_days'))
    )
    op.create_index('ix_referrer_days_day', 'referrer_days', ['day', 'referrer_id', 'approved'])
    op.create_table('referrer_stats',
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('approved', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('pending_review', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('rejected', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('qualified', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('link_opens', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['referrer_id'], ['users.id'], name=op.f('fk_referrer_stats_referrer_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('referrer_id', name=op.f('pk_referrer_stats'))
    )
    op.create_table('reward_balances',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.Integer(), nullable=False),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_reward_balances_not_negative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_reward_balances_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_reward_balances'))
    )
    op.create_table('rewards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=True),
    sa.Column('conversion_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_rewards_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards'))
    )
    op.create_index('ix_rewards_user', 'rewards', ['user_id', 'id'])
    op.create_index('uq_rewards_referral_reason', 'rewards', ['referral_id', 'reason'], unique=True, postgresql_where=sa.text('referral_id IS NOT NULL'), sqlite_where=sa.text('referral_id IS NOT NULL'))
    # Plain ALTER TABLE, never a batch (a SQLite rebuild of `users` drops uq_users_email_lower).
    op.add_column('users', sa.Column('blocked_at', TIMESTAMP, nullable=True))
    op.add_column('users', sa.Column('signin_network', sa.String(length=64), nullable=True))
    _backfill()


def _backfill() -> None:
    """Every existing referral is approved; the counters start from the users table."""
    # The UTC day of a moment: SQLite and MySQL store UTC without a zone.
    day = (
        "date(created_at)"
        if op.get_bind().dialect.name == "sqlite" or is_mysql(op.get_bind().dialect.name)
        else "CAST(created_at AT TIME ZONE 'UTC' AS date)"
    )
    op.execute(
        "INSERT INTO referrals (id, referrer_id, code, status, review_reasons, created_at) "
        "SELECT id, referrer_id, COALESCE(referral_code, ''), 'approved', '[]', created_at "
        "FROM users WHERE referrer_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO referrer_stats (referrer_id, approved) "
        "SELECT referrer_id, count(*) FROM users WHERE referrer_id IS NOT NULL "
        "GROUP BY referrer_id"
    )
    op.execute(
        "INSERT INTO referrer_days (referrer_id, day, referrals, approved) "
        f"SELECT referrer_id, {day}, count(*), count(*) FROM users "
        f"WHERE referrer_id IS NOT NULL GROUP BY referrer_id, {day}"
    )
    op.execute(
        "INSERT INTO program_days (day, signups, referred) "
        f"SELECT {day}, count(*), count(referrer_id) FROM users GROUP BY {day}"
    )
    op.execute(
        "INSERT INTO program_totals (id, users, referred) "
        "SELECT 1, count(*), count(referrer_id) FROM users"
    )


def downgrade() -> None:
    # In place (SQLite 3.35+), never a batch: a rebuild of `users` loses the lower(email) index.
    op.drop_column('users', 'signin_network')
    op.drop_column('users', 'blocked_at')

    op.drop_table('rewards')
    op.drop_table('reward_balances')
    op.drop_table('referrer_stats')
    op.drop_table('referrer_days')
    op.drop_table('referrals')
    op.drop_table('conversions')
    op.drop_table('program_totals')
    op.drop_table('program_days')
