"""One job table for all background work; API keys, the audit log, webhooks.

The Telegram outbox and the enrichment columns' retry schedule become jobs: pending
notifications and pending enrichments are carried over as queued jobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP  # microseconds on every database (MySQL's DATETIME(6))

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = sa.text("status IN ('queued', 'running')")
PENDING_ENRICHMENT = sa.text("enrichment_status = 'pending'")
NOTIFICATION_PENDING = sa.text("sent_at IS NULL AND failed_at IS NULL")
# What the settings' defaults give (JOB_RETRY_SCHEDULE; ENRICHMENT_MAX_ATTEMPTS).
MESSAGE_ATTEMPTS = 6
ENRICHMENT_ATTEMPTS = 5


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", TIMESTAMP, nullable=False),
        sa.Column("lease", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index(
        "ix_jobs_due",
        "jobs",
        ["run_at", "id"],
        postgresql_where=UNFINISHED,
        sqlite_where=UNFINISHED,
    )
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_digest", name="uq_api_keys_key_digest"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_api_key_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_until", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_deliveries_endpoint_id_webhook_endpoints",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_message"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "id"]
    )
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status", "id"])
    op.create_index("ix_webhook_deliveries_finished_at", "webhook_deliveries", ["finished_at"])

    _carry_over()

    op.drop_table("notifications")
    op.drop_index("ix_users_enrichment_due", table_name="users")
    # In place, never a batch: a SQLite rebuild of `users` loses the lower(email) index.
    op.drop_column("users", "enrichment_retry_at")


def _carry_over() -> None:
    """Queued chat messages and pending enrichments become queued jobs."""
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # as the service stores them there
    jobs = sa.table(
        "jobs",
        sa.column("kind", sa.String),
        sa.column("payload", sa.JSON),
        sa.column("status", sa.String),
        sa.column("attempts", sa.Integer),
        sa.column("max_attempts", sa.Integer),
        sa.column("run_at", TIMESTAMP),
        sa.column("created_at", TIMESTAMP),
    )
    notifications = sa.table(
        "notifications",
        sa.column("recipient_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("payload", sa.JSON),
        sa.column("sent_at", TIMESTAMP),
        sa.column("failed_at", TIMESTAMP),
    )
    users = sa.table(
        "users", sa.column("id", sa.Integer), sa.column("enrichment_status", sa.String)
    )
    rows = []
    for recipient_id, kind, payload in bind.execute(
        sa.select(notifications.c.recipient_id, notifications.c.kind, notifications.c.payload)
        .where(notifications.c.sent_at.is_(None), notifications.c.failed_at.is_(None))
    ):
        values = {**(payload or {}), "recipient_id": recipient_id, "message": kind}
        rows.append(("telegram.message", values, MESSAGE_ATTEMPTS))
    for (user_id,) in bind.execute(
        sa.select(users.c.id).where(users.c.enrichment_status == "pending")
    ):
        rows.append(("enrichment", {"user_id": user_id}, ENRICHMENT_ATTEMPTS))
    if rows:
        bind.execute(
            jobs.insert(),
            [
                {
                    "kind": kind,
                    "payload": payload,
                    "status": "queued",
                    "attempts": 0,
                    "max_attempts": attempts,
                    "run_at": now,
                    "created_at": now,
                }
                for kind, payload, attempts in rows
            ],
        )


def downgrade() -> None:
    # Queued jobs are not carried back: the old outbox starts empty.
    op.add_column("users", sa.Column("enrichment_retry_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ix_users_enrichment_due",
        "users",
        ["enrichment_retry_at"],
        postgresql_where=PENDING_ENRICHMENT,
        sqlite_where=PENDING_ENRICHMENT,
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("failed_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["users.id"],
            name="fk_notifications_users_id_recipient",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index("ix_notifications_recipient_id", "notifications", ["recipient_id"])
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["id"],
        postgresql_where=NOTIFICATION_PENDING,
        sqlite_where=NOTIFICATION_PENDING,
    )
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["next_attempt_at", "id"],
        postgresql_where=NOTIFICATION_PENDING,
        sqlite_where=NOTIFICATION_PENDING,
    )
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("jobs")
