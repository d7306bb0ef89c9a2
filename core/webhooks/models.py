from __future__ import annotations

import datetime as dt
from typing import Any

import ormar
import sqlalchemy as sa

from core.infra import clock
from core.infra.db import UTCDateTime, base_config

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


class WebhookEndpoint(ormar.Model):
    ormar_config = base_config.copy(tablename="webhook_endpoints")

    id: int = ormar.Integer(primary_key=True)
    url: str = ormar.String(max_length=2000)
    events: list[str] = ormar.JSON(default=list)
    description: str | None = ormar.String(max_length=500, nullable=True)
    enabled: bool = ormar.Boolean(default=True, server_default=sa.true(), nullable=False)
    secret: str = ormar.String(max_length=100)
    # After a rotation the old secret signs too, until `previous_secret_until`.
    previous_secret: str | None = ormar.String(max_length=100, nullable=True)
    previous_secret_until: dt.datetime | None = UTCDateTime(nullable=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    # Deliveries that ended failed since the last one that succeeded; at
    # WEBHOOK_DISABLE_AFTER_FAILURES the endpoint is switched off, and `disabled_reason` says why.
    consecutive_failures: int = ormar.Integer(
        default=0, server_default=sa.text("0"), nullable=False
    )
    disabled_reason: str | None = ormar.String(max_length=200, nullable=True)


class WebhookDelivery(ormar.Model):
    """One event to one endpoint: every attempt carries the same `message_id` (webhook-id)."""

    ormar_config = base_config.copy(
        tablename="webhook_deliveries",
        constraints=[
            ormar.UniqueColumns("endpoint_id", "message_id", name="uq_webhook_deliveries_message"),
            ormar.IndexColumns("endpoint_id", "id", name="ix_webhook_deliveries_endpoint"),
            ormar.IndexColumns("status", "id", name="ix_webhook_deliveries_status"),
            ormar.IndexColumns("finished_at", name="ix_webhook_deliveries_finished_at"),
        ],
    )

    id: int = ormar.Integer(primary_key=True)
    endpoint: WebhookEndpoint = ormar.ForeignKey(
        WebhookEndpoint,
        name="endpoint_id",
        nullable=False,
        ondelete=ormar.ReferentialAction.CASCADE,
        related_name="deliveries",
    )
    message_id: str = ormar.String(max_length=64)
    event_type: str = ormar.String(max_length=64)
    # The body sent on every attempt: {"type", "timestamp", "data"}.
    payload: dict[str, Any] = ormar.JSON(default=dict)
    status: str = ormar.String(max_length=16, default=PENDING, nullable=False)
    attempt: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    response_status: int | None = ormar.Integer(nullable=True)
    error: str | None = ormar.String(max_length=500, nullable=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    next_attempt_at: dt.datetime | None = UTCDateTime(nullable=True)
    finished_at: dt.datetime | None = UTCDateTime(nullable=True)
