"""Join requests held for review: the operator's decision is carried to Telegram by a job of
the bot's process (`core.invites`), queued in the decision's own transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.infra import clock
from core.infra.db import execute
from core.jobs.queue import JobQueue
from core.telegram.tables import REQUESTED, chat_members, invite_links

# Jobs only the bot's process runs (it holds the token): a join request approved or declined,
# a stay checked, a campaign's chat checked (and its links revoked when it stopped running).
TELEGRAM_JOIN_DECISION = "telegram.join_decision"
TELEGRAM_STAY = "telegram.stay"


async def request_decided(
    connection: Any, jobs: JobQueue, *, referral_id: int, approve: bool
) -> None:
    """In the review decision's transaction: a join request waiting on this referral is
    approved or declined in Telegram."""
    waiting = (
        await execute(
            connection,
            sa.select(chat_members.c.chat_id, chat_members.c.telegram_id).where(
                chat_members.c.referral_id == referral_id, chat_members.c.status == REQUESTED
            ),
        )
    ).all()
    for chat_id, telegram_id in waiting:
        await jobs.enqueue(
            TELEGRAM_JOIN_DECISION,
            {"chat_id": chat_id, "telegram_id": telegram_id, "approve": approve},
        )


async def forget_links(connection: Any, user_id: int) -> None:
    """In an erasure's transaction: the person's invite links stop counting joins at once
    (their rows go with nothing personal in them; Telegram keeps the link as a plain one)."""
    await execute(
        connection,
        sa.update(invite_links)
        .where(invite_links.c.user_id == user_id, invite_links.c.revoked_at.is_(None))
        .values(revoked_at=clock.utcnow()),
    )
