"""Points, balances and the program's points total are 64-bit: a program-wide total near
2^31 made every qualifying conversion fail on PostgreSQL. SQLite's INTEGER is 64-bit already.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each with its server default: MySQL's MODIFY restates the whole column, default included.
COLUMNS = (
    ("rewards", "points", None),
    ("reward_balances", "balance", None),
    ("program_totals", "rewards_points", sa.text("0")),
)


def upgrade() -> None:
    _retype(sa.BigInteger())


def downgrade() -> None:
    _retype(sa.Integer())


def _retype(type_: sa.types.TypeEngine[int]) -> None:
    if op.get_context().dialect.name == "sqlite":
        return
    for table, column, default in COLUMNS:
        op.alter_column(
            table, column, type_=type_, existing_nullable=False, existing_server_default=default
        )
