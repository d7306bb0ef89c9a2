"""Operators (superusers, and the API keys they create) and the audit log of what they do."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.infra import clock, security
from core.infra.db import Read, database, execute, is_valid_id
from core.infra.pagination import newest_first
from core.operators.errors import ApiKeyNotFound, BadApiKey, KeysNeedASuperuser, NotAnOperator
from core.operators.models import ApiKey, AuditEntry
from core.users.models import Account, User

API_KEY_PREFIX = "rk_"
MAX_API_KEY_LENGTH = 100
# `last_used_at` is moved at most this often per key: no write on every call.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)

_keys = ApiKey.ormar_config.table
_audit = AuditEntry.ormar_config.table
_users = User.ormar_config.table


def _actor_label(row: Any) -> str:
    """Who acted, as a person reads it: the operator's email, the key's name, or the service
    itself (an endpoint it switched off)."""
    if row.actor_user_id is not None:
        return str(row.actor_email or f"user #{row.actor_user_id} (erased)")
    if row.actor_api_key_id is not None:
        return f"key: {row.actor_key_name or f'#{row.actor_api_key_id} (deleted)'}"
    return "the service"


_KEY_BY_DIGEST = Read(
    sa.select(_keys.c.id, _keys.c.last_used_at).where(_keys.c.key_digest == sa.bindparam("digest"))
)


@dataclass(frozen=True, slots=True)
class Operator:
    """Who acts: a superuser (by bearer token) or an API key."""

    user_id: int | None = None
    api_key_id: int | None = None
    # Where the request came from (the client address of the front), for the audit log.
    address: str | None = None

    @property
    def is_superuser(self) -> bool:
        return self.user_id is not None


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class AuditItem:
    id: int
    actor: dict[str, int | str | None]
    action: str
    target: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditItem]
    next_cursor: str | None


def may_read_referrals(viewer: Account | Operator, user_id: int) -> bool:
    """The user themself, a superuser or an API key may read a user's referrals."""
    if isinstance(viewer, Operator):
        return True
    return viewer.id == user_id or viewer.is_superuser


def operator_of(user: Account) -> Operator:
    """The operator a signed-in user is, if a superuser."""
    if not user.is_superuser:
        raise NotAnOperator()
    return Operator(user_id=user.id)


class OperatorService:
    async def operator_of_key(self, key: str) -> Operator:
        """The operator an `X-API-Key` stands for; a deleted key stops working at once."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > MAX_API_KEY_LENGTH:
            raise BadApiKey()
        row = await _KEY_BY_DIGEST.first(digest=security.token_digest(key))
        if row is None:
            raise BadApiKey()
        key_id, last_used_at = row[0], row[1]
        now = clock.utcnow()
        if last_used_at is None or last_used_at < now - _LAST_USED_RESOLUTION:
            async with database.transaction(), database.connection() as connection:
                await execute(
                    connection,
                    sa.update(_keys).where(_keys.c.id == key_id).values(last_used_at=now),
                )
        return Operator(api_key_id=key_id)

    async def create_key(self, *, operator: Operator, name: str) -> tuple[ApiKeyView, str]:
        """A new key: the value is returned here only, and stored as its digest."""
        if not operator.is_superuser:
            raise KeysNeedASuperuser()
        key = API_KEY_PREFIX + security.new_opaque_token()
        async with database.transaction():
            row = await ApiKey.objects.create(
                name=name, key_digest=security.token_digest(key), created_by=operator.user_id
            )
            await self.record(
                operator=operator, action="api_key.created", target=f"api_key:{row.id}"
            )
        return ApiKeyView(row.id, row.name, row.created_at, None), key

    async def keys(self, *, operator: Operator) -> list[ApiKeyView]:
        if not operator.is_superuser:
            raise KeysNeedASuperuser()
        statement = sa.select(
            _keys.c.id, _keys.c.name, _keys.c.created_at, _keys.c.last_used_at
        ).order_by(_keys.c.id)
        async with database.connection() as connection:
            rows = (await execute(connection, statement)).all()
        return [ApiKeyView(*row) for row in rows]

    async def delete_key(self, *, operator: Operator, key_id: int) -> None:
        if not operator.is_superuser:
            raise KeysNeedASuperuser()
        if not is_valid_id(key_id):
            raise ApiKeyNotFound()
        async with database.transaction(), database.connection() as connection:
            deleted = (
                await execute(connection, sa.delete(_keys).where(_keys.c.id == key_id))
            ).rowcount
            if not deleted:
                raise ApiKeyNotFound()
            await self.record(
                operator=operator, action="api_key.deleted", target=f"api_key:{key_id}"
            )

    @staticmethod
    async def record(*, operator: Operator, action: str, target: str) -> None:
        """Write an audit entry, in the transaction of the action when one is under way."""
        async with database.connection() as connection:
            await execute(
                connection,
                sa.insert(_audit).values(
                    actor_user_id=operator.user_id,
                    actor_api_key_id=operator.api_key_id,
                    actor_address=(operator.address or "")[:64] or None,
                    action=action,
                    target=target[:200],
                    created_at=clock.utcnow(),
                ),
            )

    @staticmethod
    async def audit(*, limit: int, cursor: str | None = None) -> AuditPage:
        """Every operator action, newest first."""
        statement = sa.select(
            _audit.c.id,
            _audit.c.actor_user_id,
            _audit.c.actor_api_key_id,
            _audit.c.actor_address,
            _audit.c.action,
            _audit.c.target,
            _audit.c.created_at,
            _users.c.email.label("actor_email"),
            _keys.c.name.label("actor_key_name"),
        ).select_from(
            _audit.outerjoin(_users, _users.c.id == _audit.c.actor_user_id).outerjoin(
                _keys, _keys.c.id == _audit.c.actor_api_key_id
            )
        )
        rows, next_cursor = await newest_first(statement, _audit.c.id, limit=limit, cursor=cursor)
        items = [
            AuditItem(
                id=row.id,
                actor={
                    "user_id": row.actor_user_id,
                    "api_key_id": row.actor_api_key_id,
                    "address": row.actor_address,
                    "label": _actor_label(row),
                },
                action=row.action,
                target=row.target,
                created_at=row.created_at,
            )
            for row in rows
        ]
        return AuditPage(items, next_cursor)
