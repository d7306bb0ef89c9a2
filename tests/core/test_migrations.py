"""One Alembic history for SQLite and PostgreSQL: up, down, up again, and the invariants it
puts in the schema hold at the SQL level, whatever the application does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import core.models  # noqa: F401  (the metadata holds every table)
from core.infra import db
from tests.conftest import BACKEND, DATABASE_URL, ROOT
from tests.mysql import mysql_run

MIGRATIONS_DB = "referral_test_migrations"
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = db.async_url(url)
    config.attributes["configure_logger"] = False
    config.set_main_option("path_separator", "os")
    return config


async def _alembic(url: str, action: str, revision: str) -> None:
    # env.py calls asyncio.run without a connection; pytest's loop already runs in this thread.
    await asyncio.to_thread(getattr(command, action), _config(url), revision)


async def _postgres_admin(url: str):
    import asyncpg

    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database="postgres",
    )


@pytest.fixture
async def fresh_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the backend under test, gone afterwards."""
    if BACKEND == "mariadb":
        drop = f"DROP DATABASE IF EXISTS `{MIGRATIONS_DB}`"
        await mysql_run(DATABASE_URL, drop, f"CREATE DATABASE `{MIGRATIONS_DB}`")
        try:
            yield make_url(DATABASE_URL).set(database=MIGRATIONS_DB).render_as_string(False)
        finally:
            await mysql_run(DATABASE_URL, drop)
        return
    if BACKEND != "services":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    admin = await _postgres_admin(DATABASE_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{MIGRATIONS_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{MIGRATIONS_DB}"')
        yield make_url(DATABASE_URL).set(database=MIGRATIONS_DB).render_as_string(False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{MIGRATIONS_DB}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def engine(fresh_url: str) -> AsyncIterator[AsyncEngine]:
    instance = create_async_engine(db.async_url(fresh_url), poolclass=sa.pool.NullPool)
    yield instance
    await instance.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))


# MySQL has no partial or expression index: generated columns stand in for the two (see the
# first migration); the invariants test below checks them at the SQL level instead.
MYSQL_STAND_INS = {
    "email_lower",
    "uq_users_email_lower",
    "live_owner_id",
    "uq_referral_codes_owner_live",
}


async def _drift(engine: AsyncEngine) -> list:
    def compare(connection: sa.Connection) -> list:
        def include(obj, name, kind, reflected, compare_to) -> bool:
            return not (db.is_mysql(connection.dialect.name) and name in MYSQL_STAND_INS)

        options = {"compare_type": True, "include_object": include}
        context = MigrationContext.configure(connection, opts=options)
        return compare_metadata(context, db.metadata)

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


def test_one_history():
    heads = ScriptDirectory.from_config(_config(DATABASE_URL)).get_heads()
    assert len(heads) == 1, heads


# SQLite cannot reflect the lower(email) index; the SQL-level test below checks it instead.
@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning")
@pytest.mark.filterwarnings("ignore:.*expression-based index:sqlalchemy.exc.SAWarning")
async def test_upgrade_downgrade_upgrade(fresh_url: str, engine: AsyncEngine):
    model_tables = set(db.metadata.tables)
    assert await _tables(engine) == set()

    await _alembic(fresh_url, "upgrade", "head")
    assert await _tables(engine) == model_tables | {"alembic_version"}
    # The migrations build exactly what the models describe.
    assert await _drift(engine) == []

    await _alembic(fresh_url, "downgrade", "base")
    assert await _tables(engine) == {"alembic_version"}
    async with engine.connect() as connection:
        versions = (await connection.execute(sa.text("SELECT * FROM alembic_version"))).all()
    assert versions == []

    await _alembic(fresh_url, "upgrade", "head")
    assert await _tables(engine) == model_tables | {"alembic_version"}
    assert await _drift(engine) == []


async def test_the_schema_enforces_the_invariants(fresh_url: str, engine: AsyncEngine):
    await _alembic(fresh_url, "upgrade", "head")
    users = db.metadata.tables["users"]
    codes = db.metadata.tables["referral_codes"]

    async def accepted(statement: sa.Executable) -> None:
        async with engine.begin() as connection:
            await connection.execute(statement)

    async def refused(statement: sa.Executable) -> None:
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(statement)

    def code(value: str, owner: int, **fields) -> sa.Executable:
        row = {"created_at": NOW, "expires_at": NOW + dt.timedelta(days=7), **fields}
        return sa.insert(codes).values(code=value, owner_id=owner, **row)

    # Email is unique whatever its case.
    await accepted(sa.insert(users).values(id=1, email="ann@example.com", created_at=NOW))
    await refused(sa.insert(users).values(id=2, email="ANN@Example.com", created_at=NOW))
    await accepted(sa.insert(users).values(id=2, email="bob@example.com", created_at=NOW))
    # Bot-only accounts have no email: any number of them.
    await accepted(sa.insert(users).values(id=3, created_at=NOW, telegram_id=1001))
    await accepted(sa.insert(users).values(id=4, created_at=NOW, telegram_id=1002))

    # At most one live code per owner; closed ones do not count.
    await accepted(code("AnnLive1", 1))
    await refused(code("AnnLive2", 1))
    await accepted(code("AnnOld01", 1, closed_at=NOW))
    await accepted(code("AnnOld02", 1, closed_at=NOW))
    await accepted(code("BobLive1", 2))
    # A code value exists once, forever.
    await refused(code("AnnOld01", 3))

    # The use counter cannot pass max_uses, not even by an UPDATE.
    await accepted(code("Limited1", 3, max_uses=2, uses=2))
    await refused(code("TooMany1", 4, max_uses=2, uses=3))
    await refused(code("ZeroMax1", 4, max_uses=0))
    await refused(code("Negative", 4, uses=-1))
    await refused(sa.update(codes).where(codes.c.code == "Limited1").values(uses=codes.c.uses + 1))
    async with engine.connect() as connection:
        uses = await connection.scalar(sa.select(codes.c.uses).where(codes.c.code == "Limited1"))
        live = await connection.scalar(
            sa.select(sa.func.count()).where(codes.c.owner_id == 1, codes.c.closed_at.is_(None))
        )
    assert uses == 2
    assert live == 1


async def test_an_upgrade_keeps_the_previous_releases_data(fresh_url: str, engine: AsyncEngine):
    """A database made by the previous release (0009), holding data, upgraded to head and
    back: chat-link tokens move into account_tokens and return, every other row stays."""
    await _alembic(fresh_url, "upgrade", "0009")
    moment = NOW.replace(tzinfo=None)  # bound as text: every database reads it as UTC
    statements = (
        "INSERT INTO users (id, email, created_at, referral_count) VALUES "
        "(1, 'ann@example.com', :t, 1), (2, 'bob@example.com', :t, 0)",
        "UPDATE users SET referrer_id = 1, referral_code = 'AnnCode1' WHERE id = 2",
        "INSERT INTO referral_codes (id, code, owner_id, created_at, expires_at, uses) "
        "VALUES (1, 'AnnCode1', 1, :t, :t, 1)",
        # Ids from the tables' own sequences, as the release made them.
        "INSERT INTO telegram_link_tokens (user_id, token_hash, created_at, expires_at) "
        "VALUES (1, 'linkdigest', :t, :t)",
        "INSERT INTO account_tokens (user_id, purpose, token_hash, created_at, expires_at) "
        "VALUES (2, 'password_reset', 'maildigest', :t, :t)",
    )
    async with engine.begin() as connection:
        for sql in statements:
            await connection.execute(sa.text(sql), {"t": moment})

    async def tokens() -> list[tuple[str, int, str]]:
        async with engine.connect() as connection:
            result = await connection.execute(
                sa.text(
                    "SELECT purpose, user_id, token_hash FROM account_tokens ORDER BY token_hash"
                )
            )
            return [tuple(row) for row in result]

    await _alembic(fresh_url, "upgrade", "head")
    assert await tokens() == [
        ("telegram_link", 1, "linkdigest"),
        ("password_reset", 2, "maildigest"),
    ]
    async with engine.connect() as connection:
        referred = await connection.scalar(sa.text("SELECT referrer_id FROM users WHERE id = 2"))
        code = await connection.scalar(sa.text("SELECT code FROM referral_codes WHERE id = 1"))
    assert (referred, code) == (1, "AnnCode1")

    await _alembic(fresh_url, "downgrade", "0009")
    assert await tokens() == [("password_reset", 2, "maildigest")]
    async with engine.connect() as connection:
        link = await connection.scalar(sa.text("SELECT user_id FROM telegram_link_tokens"))
    assert link == 1


async def test_v1_1_data_lands_in_the_default_campaign(fresh_url: str, engine: AsyncEngine):
    """A v1.1 database (0010) with a referral, its qualifying conversion and rewards (one
    granted at approval, without its conversion), upgraded to head: everything belongs to the
    default campaign, whose rules are the settings; the rewards are available since their
    grant; the referrer's qualification counts towards milestones and caps. Then back."""
    from core.campaigns.rules import resolve
    from core.infra.settings import ProgramSettings

    await _alembic(fresh_url, "upgrade", "0010")
    moment = NOW.replace(tzinfo=None)
    statements = (
        "INSERT INTO users (id, email, created_at, referral_count) VALUES "
        "(1, 'ann@example.com', :t, 1), (2, 'bob@example.com', :t, 0)",
        "UPDATE users SET referrer_id = 1, referral_code = 'AnnCode1' WHERE id = 2",
        "INSERT INTO referral_codes (id, code, owner_id, created_at, expires_at, uses) "
        "VALUES (1, 'AnnCode1', 1, :t, :t, 1)",
        "INSERT INTO referrals (id, referrer_id, code, status, review_reasons, created_at, "
        "qualified_at) VALUES (2, 1, 'AnnCode1', 'approved', '[]', :t, :t)",
        "INSERT INTO conversions (id, user_id, event, external_id, referral_qualified, "
        "created_at) VALUES (7, 2, 'purchase', 'o-1', :yes, :t)",
        "INSERT INTO rewards (id, user_id, points, reason, referral_id, conversion_id, "
        "created_at) VALUES (1, 1, 100, 'referral_qualified', 2, NULL, :t), "
        "(2, 2, 50, 'referred_signup_bonus', 2, 7, :t)",
        "INSERT INTO reward_balances (user_id, balance) VALUES (1, 100), (2, 50)",
    )
    async with engine.begin() as connection:
        for sql in statements:
            await connection.execute(sa.text(sql), {"t": moment, "yes": True})

    await _alembic(fresh_url, "upgrade", "head")
    async with engine.connect() as connection:
        table = db.metadata.tables["campaigns"]  # `key` is a reserved word in MySQL: quoted
        campaign = (
            await connection.execute(
                sa.select(table.c.id, table.c.key, table.c.status, table.c.rules)
            )
        ).all()
        rewards = (
            await connection.execute(
                sa.text(
                    "SELECT id, status, conversion_id, campaign_id, available_at, created_at "
                    "FROM rewards ORDER BY id"
                )
            )
        ).all()
        code = (await connection.execute(sa.text("SELECT campaign_id FROM referral_codes"))).all()
        referral = (
            await connection.execute(sa.text("SELECT campaign_id, rewarded_at FROM referrals"))
        ).one()
        counted = (
            await connection.execute(
                sa.text(
                    "SELECT referrer_id, campaign_id, referrals, qualified FROM referrer_campaigns"
                )
            )
        ).all()
        balances = (
            await connection.execute(
                sa.text("SELECT user_id, balance, pending FROM reward_balances ORDER BY user_id")
            )
        ).all()
    ((campaign_id, key, status, rules),) = campaign
    assert (campaign_id, key, status) == (1, "default", "active")
    stored = rules if isinstance(rules, dict) else json.loads(rules)
    program = ProgramSettings()
    resolved = resolve(stored, program)
    assert (resolved.referrer_points, resolved.friend_points, resolved.hold_days) == (
        program.reward_referrer_points,
        program.reward_friend_points,
        0,
    )
    assert resolved.review.burst_limit == program.review_burst_limit
    assert [(r[0], r[1], r[2], r[3]) for r in rewards] == [
        (1, "available", 7, 1),  # granted at approval: it learnt its conversion
        (2, "available", 7, 1),
    ]
    assert all(str(r[4])[:19] == str(r[5])[:19] for r in rewards)  # available since granted
    assert code == [(1,)]
    assert referral[0] == 1
    assert referral[1] is not None
    assert counted == [(1, 1, 1, 1)]
    assert [tuple(b) for b in balances] == [(1, 100, 0), (2, 50, 0)]

    await _alembic(fresh_url, "downgrade", "0010")
    async with engine.connect() as connection:
        kept = await connection.scalar(sa.text("SELECT COUNT(*) FROM rewards"))
        live = await connection.scalar(
            sa.text("SELECT COUNT(*) FROM referral_codes WHERE closed_at IS NULL")
        )
    assert (kept, live) == (2, 1)
