"""One-time tokens handed to a user — a mailed link (password reset, email verification), a
chat-link payload — each stored as its SHA-256 with its purpose, spent once by one
conditional UPDATE. Refresh tokens, which rotate in families, are auth's own table."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import sqlalchemy as sa

from core.infra import clock, security
from core.infra.db import database, execute, in_transaction
from core.users.models import AccountToken

State = Literal["live", "used", "expired", "unknown"]


_tokens = AccountToken.ormar_config.table


async def issue(
    user_id: int, purpose: str, lifetime: dt.timedelta, *, size: int = 32
) -> tuple[str, dt.datetime]:
    """A new token of `size` random bytes for this user and purpose, and when it expires."""
    token = security.new_opaque_token(size)
    now = clock.utcnow()
    expires_at = now + lifetime
    await AccountToken.objects.create(
        user=user_id,
        purpose=purpose,
        token_hash=security.token_digest(token),
        created_at=now,
        expires_at=expires_at,
    )
    return token, expires_at


def _live(token: str, purpose: str, now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        _tokens.c.token_hash == security.token_digest(token),
        _tokens.c.purpose == purpose,
        _tokens.c.used_at.is_(None),
        _tokens.c.expires_at > now,
    )


async def spend(token: str, purpose: str) -> int | None:
    """The token's user, once: None when it is unknown, used or expired. Inside the caller's
    transaction when there is one (what the token unlocks commits with its use)."""
    now = clock.utcnow()
    statement = (
        sa.update(_tokens)
        .where(_live(token, purpose, now))
        .values(used_at=now)
        .returning(_tokens.c.user_id)
    )
    async with database.connection() as connection:
        row = (await execute(connection, statement)).first()
    return row.user_id if row is not None else None


async def state(token: str, purpose: str) -> State:
    """Whether the token would work, and if not why (for a refusal that says so)."""
    statement = sa.select(_tokens.c.used_at, _tokens.c.expires_at).where(
        _tokens.c.token_hash == security.token_digest(token), _tokens.c.purpose == purpose
    )
    async with database.connection() as connection:
        row = (await execute(connection, statement)).first()
    if row is None:
        return "unknown"
    if row.used_at is not None:
        return "used"
    return "live" if row.expires_at > clock.utcnow() else "expired"


async def forget(user_id: int) -> None:
    """Inside the caller's transaction (an erasure): every one-time token of the user goes."""
    await execute(in_transaction(), sa.delete(_tokens).where(_tokens.c.user_id == user_id))
