"""The program's counters, moved by the transaction of the change they count (written last,
merged per row: `core.infra.db.Increments`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncConnection

from core.infra.db import add_now, increment
from core.program.tables import (
    campaign_days,
    campaign_qualify_hours,
    program_days,
    program_totals,
    referrer_campaigns,
    referrer_days,
    referrer_stats,
)


def day_of(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


def referrer(referrer_id: int, **increments: int) -> None:
    increment(referrer_stats, {"referrer_id": referrer_id}, **increments)


def referrer_day(referrer_id: int, day: dt.date, **increments: int) -> None:
    increment(referrer_days, {"referrer_id": referrer_id, "day": day}, **increments)


def program(day: dt.date | None = None, **increments: int) -> None:
    """The overview: `signups`, `referred`, `qualified` by day (when `day` is given) and the
    totals (`users`, `referred`, `pending_review`, `qualified`, `rewards_points`)."""
    daily = {k: v for k, v in increments.items() if k in ("signups", "referred", "qualified")}
    if day is not None:
        increment(program_days, {"day": day}, **daily)
    totals = {k: v for k, v in increments.items() if k != "signups"}
    if "signups" in increments:
        totals["users"] = increments["signups"]
    increment(program_totals, {"id": 1}, **totals)


async def referrer_campaign_now(
    connection: AsyncConnection, referrer_id: int, campaign_id: int, **increments: int
) -> None:
    """The referrer's row in the campaign, written now: a sign-up holds it from here, as a
    qualification does (`rewards.count_qualification`), so the two queue on it before
    either writes a shared counter."""
    await add_now(
        connection,
        referrer_campaigns,
        {"referrer_id": referrer_id, "campaign_id": campaign_id},
        **increments,
    )


def campaign(campaign_id: int, day: dt.date, **increments: int) -> None:
    """The campaign's funnel of that day (`core.program.tables.FUNNEL_COUNTS`)."""
    increment(campaign_days, {"campaign_id": campaign_id, "day": day}, **increments)


def qualified(
    referrer_id: int,
    campaign_id: int,
    *,
    signed_up: dt.datetime,
    qualified_at: dt.datetime,
    by: int = 1,
) -> None:
    """A qualification counted (`by` 1) or taken back (-1, a rejection or a refund): the
    referrer's, the program's and the campaign's counts on its day, and the whole hours it
    took, for the funnel's median."""
    day = day_of(qualified_at)
    referrer(referrer_id, qualified=by)
    program(day, qualified=by)
    campaign(campaign_id, day, qualified=by)
    hours = max(int((qualified_at - signed_up).total_seconds() // 3600), 0)
    increment(
        campaign_qualify_hours,
        {"campaign_id": campaign_id, "day": day, "hours": hours},
        count=by,
    )
