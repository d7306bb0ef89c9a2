"""The program's numbers: a referrer's stats, the leaderboard and a rank, the program's
overview, and the landing page's link opens (batched by `LinkOpens`). Reads only, by key or over
the window's rows, of the counters the program's changes keep (`counters`)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from core.infra import clock
from core.infra.db import Read, database, execute
from core.program import counters
from core.program.tables import (
    program_days,
    program_totals,
    referrer_days,
    referrer_stats,
    reward_balances,
)
from core.users.models import User

_users = User.ormar_config.table

# The reads of stats and the leaderboard: by key, or over the window's rows only.
_NO_COUNT = sa.cast(sa.null(), sa.Integer)


@functools.lru_cache(maxsize=8)
def _window(first: dt.date, days: int) -> tuple[tuple[dt.date, str], ...]:
    """The days from `first` on, with their ISO names: the same for every request of a day."""
    return tuple(
        (day, day.isoformat()) for day in (first + dt.timedelta(days=n) for n in range(days))
    )


# One round trip for a referrer's stats: the row of totals (its `day` NULL: the user's
# counter, their stats and balance, or nulls), then one row per day of the window with
# referrals.
_STATS = Read(
    sa.union_all(
        sa.select(
            sa.cast(sa.null(), sa.Date).label("day"),
            _users.c.referral_count,
            referrer_stats.c.approved,
            referrer_stats.c.pending_review,
            referrer_stats.c.rejected,
            referrer_stats.c.qualified,
            referrer_stats.c.link_opens,
            reward_balances.c.balance,
        )
        .select_from(
            _users.outerjoin(referrer_stats, referrer_stats.c.referrer_id == _users.c.id).outerjoin(
                reward_balances, reward_balances.c.user_id == _users.c.id
            )
        )
        .where(_users.c.id == sa.bindparam("user")),
        sa.select(referrer_days.c.day, referrer_days.c.referrals, *[_NO_COUNT] * 6).where(
            referrer_days.c.referrer_id == sa.bindparam("user"),
            referrer_days.c.day >= sa.bindparam("first", type_=sa.Date()),
        ),
    )
)
_WINDOW_TOTAL = sa.func.sum(referrer_days.c.approved).label("total")
_WINDOW = (
    sa.select(referrer_days.c.referrer_id, _WINDOW_TOTAL)
    .where(referrer_days.c.day >= sa.bindparam("first", type_=sa.Date()))
    .group_by(referrer_days.c.referrer_id)
    .having(_WINDOW_TOTAL > 0)
    .subquery("window")
)
_LEADERS = Read(
    sa.select(_WINDOW.c.referrer_id, _users.c.full_name, _WINDOW.c.total)
    .select_from(_WINDOW.join(_users, _users.c.id == _WINDOW.c.referrer_id))
    .where(_users.c.blocked_at.is_(None), _users.c.erased_at.is_(None))
    .order_by(_WINDOW.c.total.desc(), _WINDOW.c.referrer_id)
    .limit(sa.bindparam("limit"))
)


class ProgramStats:
    # -- stats ----------------------------------------------------------------------------

    async def referrer_stats(self, *, user_id: int, days: int = 30) -> dict[str, Any]:
        """A referrer's totals, balance and referrals per day: one read by key, whatever the
        number of referrals."""
        today = counters.day_of(clock.utcnow())
        first = today - dt.timedelta(days=days - 1)
        totals: Sequence[Any] = (0,) * 7
        daily: dict[dt.date, int] = {}
        for day, *values in await _STATS.all(user=user_id, first=first):
            if day is None:
                totals = values
            else:
                daily[day] = values[0]
        count, approved, pending, rejected, qualified, opens, balance = (
            value or 0 for value in totals
        )
        return {
            "referrals": count,
            "approved": approved,
            "pending_review": pending,
            "rejected": rejected,
            "qualified": qualified,
            "rewards_balance": balance,
            "link_opens": opens,
            "last_30_days": [
                {"date": name, "referrals": daily.get(day, 0)} for day, name in _window(first, days)
            ],
        }

    async def leaderboard(self, *, days: int, limit: int) -> list[dict[str, Any]]:
        """Approved referrals in the last `days` UTC days, most first; ties share a rank.
        Names only: never an email or a Telegram username."""
        first = counters.day_of(clock.utcnow()) - dt.timedelta(days=days - 1)
        rows = await _LEADERS.all(first=first, limit=limit)
        ranked, rank, previous = [], 0, None
        for position, (referrer_id, full_name, total) in enumerate(rows, start=1):
            if total != previous:
                rank, previous = position, total
            ranked.append(
                {
                    "rank": rank,
                    "referrer": {"id": referrer_id, "full_name": full_name},
                    "referrals": int(total),
                }
            )
        return ranked

    async def rank_of(self, *, user_id: int, days: int) -> tuple[int, int] | None:
        """A referrer's own rank and count in the window (None: no approved referral)."""
        first = counters.day_of(clock.utcnow()) - dt.timedelta(days=days - 1)
        total = sa.func.sum(referrer_days.c.approved)
        async with database.connection() as connection:
            mine = (
                await execute(
                    connection,
                    sa.select(total).where(
                        referrer_days.c.referrer_id == user_id, referrer_days.c.day >= first
                    ),
                )
            ).scalar()
            if not mine:
                return None
            per_referrer = (
                sa.select(total.label("total"))
                .select_from(referrer_days.join(_users, _users.c.id == referrer_days.c.referrer_id))
                .where(
                    referrer_days.c.day >= first,
                    _users.c.blocked_at.is_(None),
                    _users.c.erased_at.is_(None),
                )
                .group_by(referrer_days.c.referrer_id)
                .subquery()
            )
            ahead = (
                await execute(
                    connection,
                    sa.select(sa.func.count())
                    .select_from(per_referrer)
                    .where(per_referrer.c.total > mine),
                )
            ).scalar_one()
        return int(ahead) + 1, int(mine)

    async def overview(self, *, days: int) -> dict[str, Any]:
        today = counters.day_of(clock.utcnow())
        first = today - dt.timedelta(days=days - 1)
        async with database.connection() as connection:
            daily = {
                row.day: row
                for row in (
                    await execute(
                        connection, sa.select(program_days).where(program_days.c.day >= first)
                    )
                ).all()
            }
            totals = (
                await execute(connection, sa.select(program_totals).where(program_totals.c.id == 1))
            ).first()
        entries = []
        for n in range(days):
            day = first + dt.timedelta(days=n)
            row = daily.get(day)
            entries.append(
                {
                    "date": day.isoformat(),
                    "signups": row.signups if row else 0,
                    "referred": row.referred if row else 0,
                    "qualified": row.qualified if row else 0,
                }
            )
        names = ("users", "referred", "pending_review", "qualified", "rewards_points")
        return {
            "days": entries,
            "totals": {name: int(getattr(totals, name)) if totals else 0 for name in names},
        }

    # -- link opens -----------------------------------------------------------------------

    @staticmethod
    async def add_link_opens(opens: dict[int, int]) -> None:
        """Add counted opens per referrer (a batch from `LinkOpens`)."""
        if not opens:
            return
        async with database.transaction():
            for referrer_id, count in sorted(opens.items()):
                counters.referrer(referrer_id, link_opens=count)
