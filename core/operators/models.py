from __future__ import annotations

import datetime as dt

import ormar

from core.infra import clock
from core.infra.db import UTCDateTime, base_config


class ApiKey(ormar.Model):
    """A server-to-server caller's key, stored only as its SHA-256 digest."""

    ormar_config = base_config.copy(tablename="api_keys")

    id: int = ormar.Integer(primary_key=True)
    name: str = ormar.String(max_length=100)
    key_digest: str = ormar.String(max_length=64, unique=True)
    created_by: int | None = ormar.Integer(nullable=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    last_used_at: dt.datetime | None = UTCDateTime(nullable=True)


class AuditEntry(ormar.Model):
    """One operator action. The actor ids are plain values: the log outlives keys and users."""

    ormar_config = base_config.copy(tablename="audit_log")

    id: int = ormar.Integer(primary_key=True)
    actor_user_id: int | None = ormar.Integer(nullable=True)
    actor_api_key_id: int | None = ormar.Integer(nullable=True)
    # The client address of the request (None: the command line, or before it was kept).
    actor_address: str | None = ormar.String(max_length=64, nullable=True)
    action: str = ormar.String(max_length=64)
    target: str = ormar.String(max_length=200)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
