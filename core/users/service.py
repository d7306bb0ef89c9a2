"""Accounts as rows: reading and searching them, their name, and the writes a sign-up or an
erasure (core/accounts/flows.py) asks for inside its transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from core.infra import clock
from core.infra.db import Read, database, execute, in_transaction, is_valid_id
from core.infra.pagination import newest_first
from core.users.errors import UserNotFound
from core.users.models import ACCOUNT_COLUMNS, Account, Person, User

log = logging.getLogger(__name__)

_users = User.ormar_config.table
_BY_TELEGRAM_ID = Read(
    sa.select(*_users.columns).where(_users.c.telegram_id == sa.bindparam("telegram_id"))
)
# A column's model field: the same name, but for the referrer's foreign key.
_FIELDS = tuple("referrer" if c.name == "referrer_id" else c.name for c in _users.columns)


def user_of(row: Sequence[object]) -> User:
    """A `User` from a row of all its columns, in the table's order."""
    return User(**dict(zip(_FIELDS, row, strict=True)))


# What erasure clears: every column that says who the person is.
_ERASED = dict.fromkeys(
    (
        "email",
        "password_hash",
        "full_name",
        "telegram_id",
        "telegram_username",
        "language_code",
        "email_status",
        "company",
        "job_title",
        "location",
        "avatar_url",
    )
)


class UserService:
    async def get(self, user_id: int) -> User:
        user = await User.objects.get_or_none(id=user_id) if is_valid_id(user_id) else None
        if user is None:
            raise UserNotFound()
        return user

    async def search(
        self,
        *,
        query: str | None = None,
        ids: Sequence[int] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Account], str | None]:
        """Accounts for operators, newest first: by exact id (`query` of digits, or `ids`),
        else by the start of the email address; every account without either."""
        statement = sa.select(*ACCOUNT_COLUMNS)
        text = (query or "").strip()
        if ids:
            statement = statement.where(_users.c.id.in_([i for i in ids if is_valid_id(i)]))
        elif text.isascii() and text.isdigit():
            statement = statement.where(
                _users.c.id == int(text) if is_valid_id(int(text)) else sa.false()
            )
        elif text:
            pattern = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(
                sa.func.lower(_users.c.email).like(pattern[:320] + "%", escape="\\")
            )
        rows, next_cursor = await newest_first(statement, _users.c.id, limit=limit, cursor=cursor)
        return [Account(*row) for row in rows], next_cursor

    async def by_telegram_id(self, telegram_id: int) -> User | None:
        """The account of a chat (every bot update asks): one statement compiled once, the
        row made a model without ormar's query building (a sixth of the time)."""
        row = await _BY_TELEGRAM_ID.first(telegram_id=telegram_id)
        return user_of(row) if row is not None else None

    @staticmethod
    async def email_taken(email: str) -> bool:
        """Whether an account has this (normalised) email: a sign-up's fast refusal."""
        return bool(await User.objects.filter(email=email).exists())

    @staticmethod
    async def create(**fields: object) -> User:
        """Inside the caller's transaction (a sign-up): the account's row, one INSERT … RETURNING
        (the server's defaults included) without ormar's save."""
        values = {"referrer_id" if name == "referrer" else name: v for name, v in fields.items()}
        values.setdefault("created_at", clock.utcnow())
        statement = sa.insert(_users).values(values).returning(*_users.columns)
        return user_of((await execute(in_transaction(), statement)).one())

    @staticmethod
    async def rename(*, user: Person, full_name: str | None) -> Account:
        """Change the name others see (`Accounts.rename` also refreshes the views that show it)."""
        statement = (
            sa.update(_users)
            .where(_users.c.id == user.id)
            .values(full_name=full_name)
            .returning(*ACCOUNT_COLUMNS)
        )
        async with database.transaction(), database.connection() as connection:
            return Account(*(await execute(connection, statement)).one())

    @staticmethod
    async def anonymise(user_id: int) -> None:
        """Inside the caller's transaction (an erasure): every column that says who the person
        is goes; the row stays, so the referrals it counts in still count."""
        await execute(
            in_transaction(),
            sa.update(_users)
            .where(_users.c.id == user_id)
            # A new token version ends every access token already handed out.
            .values(**_ERASED, erased_at=clock.utcnow(), token_version=_users.c.token_version + 1),
        )
