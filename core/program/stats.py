"""The program's numbers: a referrer's stats, the leaderboard and a rank, the program's
overview, and the landing page's link opens (batched by `LinkOpens`). Reads only, by key or over
the window's rows, of the counters the program's changes keep (`counters`)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from core.campaigns.tables import campaigns
from core.infra import clock
from core.infra.db import Read, database, execute
from core.program import counters
from core.program.tables import (
    FUNNEL_COUNTS,
    campaign_days,
    campaign_qualify_hours,
    program_days,
    program_totals,
    referrer_days,
    referrer_stats,
    reward_balances,
)
from core.referrals.tables import code_span_days
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
            reward_balances.c.pending,
        )
        .select_from(
            _users.outerjoin(referrer_stats, referrer_stats.c.referrer_id == _users.c.id).outerjoin(
                reward_balances, reward_balances.c.user_id == _users.c.id
            )
        )
        .where(_users.c.id == sa.bindparam("user")),
        sa.select(referrer_days.c.day, referrer_days.c.referrals, *[_NO_COUNT] * 7).where(
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


# A campaign's funnel in one round trip (built once), by the campaign's key: the window's day
# counters (part 0), its qualification hours (part 1, a row per hour count), its owners' spans
# (part 2), and the campaign's id (part 3: none, no such campaign).
_KEY = sa.bindparam("key", type_=campaigns.c.key.type)
_CAMPAIGN = sa.select(campaigns.c.id).where(campaigns.c.key == _KEY).scalar_subquery()
_FIRST = sa.bindparam("first", type_=sa.Date())
_WIDTH = len(FUNNEL_COUNTS)


def _part(number: int, *values: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
    """A part's row: its number, then its values, padded to the widest part."""
    padded = [sa.cast(value, sa.BigInteger) for value in values]
    padded += [sa.cast(sa.null(), sa.BigInteger)] * (_WIDTH - len(values))
    return [sa.literal(number).label("part"), *padded]


def _total(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(column), 0)


_FUNNEL = Read(
    sa.union_all(
        sa.select(*_part(0, *(_total(campaign_days.c[name]) for name in FUNNEL_COUNTS))).where(
            campaign_days.c.campaign_id == _CAMPAIGN, campaign_days.c.day >= _FIRST
        ),
        sa.select(*_part(1, campaign_qualify_hours.c.hours, _total(campaign_qualify_hours.c.count)))
        .where(
            campaign_qualify_hours.c.campaign_id == _CAMPAIGN,
            campaign_qualify_hours.c.day >= _FIRST,
        )
        .group_by(campaign_qualify_hours.c.hours),
        sa.select(
            *_part(
                2,
                _total(code_span_days.c.began),
                _total(sa.case((code_span_days.c.day < _FIRST, code_span_days.c.ended), else_=0)),
            )
        ).where(code_span_days.c.campaign_id == _CAMPAIGN),
        sa.select(*_part(3, campaigns.c.id)).where(campaigns.c.key == _KEY),
    )
)


class ProgramStats:
    # -- stats ----------------------------------------------------------------------------

    async def referrer_stats(self, *, user_id: int, days: int = 30) -> dict[str, Any]:
        """A referrer's totals, balance and referrals per day: one read by key, whatever the
        number of referrals."""
        today = counters.day_of(clock.utcnow())
        first = today - dt.timedelta(days=days - 1)
        totals: Sequence[Any] = (0,) * 8
        daily: dict[dt.date, int] = {}
        for day, *values in await _STATS.all(user=user_id, first=first):
            if day is None:
                totals = values
            else:
                daily[day] = values[0]
        count, approved, pending, rejected, qualified, opens, balance, held = (
            value or 0 for value in totals
        )
        return {
            "referrals": count,
            "approved": approved,
            "pending_review": pending,
            "rejected": rejected,
            "qualified": qualified,
            "rewards_balance": balance,
            "rewards_pending": held,
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
    async def add_link_opens(opens: dict[tuple[int, str], int]) -> None:
        """Add counted opens per referrer and campaign key (a batch from `LinkOpens`)."""
        if not opens:
            return
        today = counters.day_of(clock.utcnow())
        async with database.transaction(), database.connection() as connection:
            ids = dict(
                (
                    await execute(
                        connection,
                        sa.select(campaigns.c.key, campaigns.c.id).where(
                            campaigns.c.key.in_({key for _, key in opens})
                        ),
                    )
                ).all()
            )
            per_campaign: dict[int, int] = {}
            for (referrer_id, key), count in sorted(opens.items()):
                counters.referrer(referrer_id, link_opens=count)
                if key in ids:
                    per_campaign[ids[key]] = per_campaign.get(ids[key], 0) + count
            for campaign_id, count in sorted(per_campaign.items()):
                counters.campaign(campaign_id, today, link_opens=count)

    # -- a campaign's funnel --------------------------------------------------------------

    async def funnel(self, *, key: str, days: int) -> dict[str, Any] | None:
        """The campaign's funnel over the last `days` UTC days, from its day counters (one
        row a day), its qualification hours (a row per day and hour count) and its codes'
        owners' spans by day: no referral or code is read. None: no campaign of that key."""
        first = counters.day_of(clock.utcnow()) - dt.timedelta(days=days - 1)
        totals: Sequence[Any] = (0,) * _WIDTH
        hours: list[tuple[int, int]] = []
        referrers = 0
        found = False
        for part, *values in await _FUNNEL.all(key=key, first=first):
            if part == 3:
                found = True
            elif part == 0:
                totals = values
            elif part == 1:
                hours.append((int(values[0]), int(values[1])))
            else:
                # Referrers who had a code in the window: every owner's span of codes that
                # began, less those that ended before the window.
                referrers = int(values[0]) - int(values[1])
        if not found:
            return None
        hours.sort()
        funnel = {name: int(value) for name, value in zip(FUNNEL_COUNTS, totals, strict=True)}
        return {
            "days": days,
            **funnel,
            "k_factor": round(funnel["signups"] / referrers, 4) if referrers else 0,
            "median_hours_to_qualify": _median(hours),
        }


def _median(histogram: list[tuple[int, int]]) -> float | None:
    """The median of whole-hour counts given as (hours, how many), in order."""
    total = sum(n for _, n in histogram if n > 0)
    if total == 0:
        return None
    middle, seen, below = total / 2, 0, None
    for hours, n in histogram:
        if n <= 0:
            continue
        if seen + n > middle:
            if total % 2 == 0 and seen == middle and below is not None:
                return (below + hours) / 2
            return float(hours)
        seen += n
        below = hours
    return float(histogram[-1][0])
