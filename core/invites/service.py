"""Growth inside Telegram: a campaign whose rules name a chat gives each participant their own
invite link; a join through it signs the friend up as `/start <code>` would, and still being a
member `qualify_after_days` later qualifies them as a `telegram.stayed` conversion.

Every change to a person's membership happens in one transaction on their `chat_members` row,
which also records the update's id (`chat_updates`): Telegram redelivers, and several bot
replicas may see one update, so each is applied once and a join is counted once. What needs Telegram
later (a stay check, a join request's decision, the links of a stopped campaign) is a job of
the bot's process, queued in that transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.accounts.flows import Accounts
from core.campaigns.service import Campaign, Campaigns
from core.campaigns.tables import ENDED, TELEGRAM_CHAT
from core.infra import clock
from core.infra.db import (
    database,
    execute,
    execute_built,
    insert_of,
    is_mysql,
    is_valid_id,
)
from core.infra.errors import DomainError
from core.infra.pagination import delete_finished
from core.invites.chat import ChatApi, ChatNotReady
from core.jobs.queue import JobQueue
from core.program.conversions import Conversions
from core.program.items import QUALIFIED
from core.referrals.models import ReferralCode
from core.referrals.service import ReferralService
from core.referrals.tables import PENDING_REVIEW, REJECTED, referrals
from core.telegram.joins import TELEGRAM_JOIN_DECISION, TELEGRAM_STAY
from core.telegram.service import TelegramProfile
from core.telegram.tables import (
    LEFT,
    MEMBER,
    READY,
    REQUESTED,
    UNCHECKED,
    UPDATES_KEPT_DAYS,
    chat_members,
    chat_updates,
    invite_links,
    telegram_chats,
)
from core.users.models import User

log = logging.getLogger(__name__)

STAYED_EVENT = "telegram.stayed"
# A code made for an invitation lives this long, or to the campaign's end when that is sooner.
INVITE_CODE_DAYS = 90
# A chat found not ready is checked again by the next /invite after this long.
RECHECK_SECONDS = 60
NAMED_CHATS_SECONDS = 5.0
# Links of a stopped campaign revoked per job run (the job queues itself again for more).
REVOKE_BATCH = 50


@dataclass(frozen=True, slots=True)
class Invitation:
    campaign: Campaign
    chat_title: str | None
    link: str
    code: str


@dataclass(frozen=True, slots=True)
class ChatStatus:
    """A chat as the console shows it beside the campaigns that name it."""

    chat_id: int
    status: str
    title: str | None
    problem: str | None
    checked_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "status": self.status,
            "ready": self.status == READY,
            "title": self.title,
            "problem": self.problem,
            "checked_at": self.checked_at,
        }


class Invites:
    def __init__(
        self,
        *,
        campaigns: Campaigns,
        accounts: Accounts,
        referrals: ReferralService,
        conversions: Conversions,
        jobs: JobQueue,
    ) -> None:
        self.campaigns = campaigns
        self.accounts = accounts
        self.referrals = referrals
        self.conversions = conversions
        self.jobs = jobs
        self._named: tuple[float, dict[int, list[Campaign]]] | None = None

    # -- chats ----------------------------------------------------------------------------

    async def named_chats(self, *, fresh: bool = False) -> dict[int, list[Campaign]]:
        """The chats campaigns (not ended) name, each with its campaigns: what every chat
        update, menu, `/invite`, inline query and getUpdates asks. Read at most every
        NAMED_CHATS_SECONDS unless `fresh` (a campaign changed in another process is seen
        that much later; Telegram sends a chat's updates only once the bot asks anyway)."""
        now = time.monotonic()
        if fresh or self._named is None or now - self._named[0] > NAMED_CHATS_SECONDS:
            self._named = (now, await self.campaigns.named_chats())
        return self._named[1]

    async def named_chat_ids(self) -> frozenset[int]:
        return frozenset(await self.named_chats())

    def forget(self) -> None:
        """Read the named chats again next time (tests start each from nothing)."""
        self._named = None

    async def chat_statuses(self, chat_ids: list[int]) -> dict[int, ChatStatus]:
        if not chat_ids:
            return {}
        async with database.connection() as connection:
            rows = (
                await execute(
                    connection,
                    sa.select(telegram_chats).where(telegram_chats.c.chat_id.in_(chat_ids)),
                )
            ).all()
        found = {row.chat_id: ChatStatus(**row._mapping) for row in rows}
        return {
            chat_id: found.get(chat_id) or ChatStatus(chat_id, UNCHECKED, None, None, None)
            for chat_id in chat_ids
        }

    async def check_chat(self, chat_id: int, api: ChatApi) -> ChatStatus:
        """Ask Telegram whether the bot may invite people to this chat; remember the answer.
        Not ready: the operator is told in the log (and the console shows it)."""
        state = await api.chat_state(chat_id)
        now = clock.utcnow()
        values: dict[str, Any] = {
            "status": state.status,
            "title": (state.title or "")[:255] or None,
            "problem": (state.problem or "")[:200] or None,
            "checked_at": now,
        }
        async with database.transaction(), database.connection() as connection:
            changed = await execute(
                connection,
                sa.update(telegram_chats).where(telegram_chats.c.chat_id == chat_id).values(values),
            )
            if changed.rowcount == 0:
                try:
                    async with database.transaction():
                        await execute(
                            connection, sa.insert(telegram_chats).values(chat_id=chat_id, **values)
                        )
                except IntegrityError:  # checked at the same moment elsewhere: theirs stands
                    pass
        if state.status != READY:
            names = [c.key for c in (await self.named_chats()).get(chat_id, [])]
            log.warning(
                "the bot cannot invite people to chat %s (campaigns %s): %s",
                chat_id,
                ", ".join(names) or "none",
                state.problem or state.status,
            )
        return ChatStatus(chat_id=chat_id, **values)

    async def campaign_changed(self, campaign_id: int, api: ChatApi) -> None:
        """The job a campaign's change queues: its chat checked, and when it is not running,
        its live links revoked (a batch at a time: the job queues itself again for more)."""
        campaign = await self.campaigns.by_id(campaign_id)
        if campaign.rules.telegram is not None and campaign.status != ENDED:
            await self.check_chat(campaign.rules.telegram.chat_id, api)
        if campaign.running(clock.utcnow()) and campaign.rules.telegram is not None:
            # Links made for another chat (the rules changed) stop counting too.
            stale = invite_links.c.chat_id != campaign.rules.telegram.chat_id
        else:
            stale = sa.true()
        async with database.connection() as connection:
            rows = (
                await execute(
                    connection,
                    sa.select(invite_links.c.id, invite_links.c.chat_id, invite_links.c.link)
                    .where(
                        invite_links.c.campaign_id == campaign_id,
                        invite_links.c.revoked_at.is_(None),
                        stale,
                    )
                    .order_by(invite_links.c.id)
                    .limit(REVOKE_BATCH + 1),
                )
            ).all()
        for row in rows[:REVOKE_BATCH]:
            await self._revoke(api, row.id, row.chat_id, row.link)
        if len(rows) > REVOKE_BATCH:
            async with database.transaction():
                await self.jobs.enqueue(TELEGRAM_CHAT, {"campaign_id": campaign_id})

    @staticmethod
    async def _revoke(api: ChatApi, link_id: int, chat_id: int, link: str) -> None:
        """Marked revoked first (from then on a join by it counts for nothing, whatever
        Telegram does), then revoked in Telegram by whoever marked it."""
        async with database.transaction(), database.connection() as connection:
            marked = await execute(
                connection,
                sa.update(invite_links)
                .where(invite_links.c.id == link_id, invite_links.c.revoked_at.is_(None))
                .values(revoked_at=clock.utcnow()),
            )
        if marked.rowcount == 1:
            # The bot lost its rights: the link is dead to us all the same.
            with suppress(ChatNotReady):
                await api.revoke_link(chat_id, link)

    # -- a participant's invitation ---------------------------------------------------------

    async def running_chat_campaigns(self) -> list[Campaign]:
        now = clock.utcnow()
        return [
            campaign
            for named in (await self.named_chats()).values()
            for campaign in named
            if campaign.running(now)
        ]

    async def menu_title(self) -> str | None:
        """What the menu's "Invite to <chat>" names: the first running campaign's chat (its
        title as the bot last read it, else the campaign's name); None when there is none."""
        running = await self.running_chat_campaigns()
        if not running:
            return None
        first = running[0]
        assert first.rules.telegram is not None
        chat = (await self.chat_statuses([first.rules.telegram.chat_id]))[
            first.rules.telegram.chat_id
        ]
        return chat.title or first.name

    async def invitation(self, *, user: User, campaign: Campaign, api: ChatApi) -> Invitation:
        """The user's own invite link to the campaign's chat: the one made before while it and
        its code are live, else a new one (named with the user's code in the campaign, made
        for the occasion when they have none). `ChatNotReady` when the bot may not invite."""
        rules = campaign.rules.telegram
        assert rules is not None, "a campaign that names a chat"
        chat = (await self.chat_statuses([rules.chat_id]))[rules.chat_id]
        if chat.status != READY:
            stale = chat.checked_at is None or (
                clock.utcnow() - chat.checked_at > dt.timedelta(seconds=RECHECK_SECONDS)
            )
            if stale:
                chat = await self.check_chat(rules.chat_id, api)
            if chat.status != READY:
                raise ChatNotReady(chat.problem)
        code = await self.referrals.active_code(owner_id=user.id, campaign=campaign)
        stored = await self._stored_link(user.id, campaign.id)
        if (
            stored is not None
            and stored.revoked_at is None
            and code is not None
            and stored.code == code.code
            and stored.chat_id == rules.chat_id
            and stored.join_request == rules.join_requests
            and await api.link_alive(rules.chat_id, stored.link, name=code.code)
        ):
            return Invitation(campaign, chat.title, stored.link, code.code)
        if code is None:
            code = await self._new_code(user, campaign)
        try:
            link = await api.create_link(
                rules.chat_id,
                name=code.code,
                expire_date=code.expires_at,
                join_request=rules.join_requests,
            )
        except ChatNotReady:
            await self.check_chat(rules.chat_id, api)  # the console and the log learn why
            raise
        kept = await self._keep(user.id, campaign, rules.chat_id, link, code, stored)
        if kept != link:  # another replica made one at the same moment: theirs is the link
            await api.revoke_link(rules.chat_id, link)
        elif stored is not None and stored.revoked_at is None:
            await api.revoke_link(stored.chat_id, stored.link)  # the old link stops counting
        return Invitation(campaign, chat.title, kept, code.code)

    async def _new_code(self, user: User, campaign: Campaign) -> ReferralCode:
        now = clock.utcnow()
        expires_at = now + dt.timedelta(days=INVITE_CODE_DAYS)
        if campaign.ends_at is not None:
            expires_at = min(expires_at, campaign.ends_at)
        try:
            return await self.referrals.create_code(
                owner=user, expires_at=expires_at, campaign=campaign
            )
        except DomainError:  # made at this moment by another of the user's presses
            code = await self.referrals.active_code(owner_id=user.id, campaign=campaign)
            if code is None:
                raise
            return code

    @staticmethod
    async def _stored_link(user_id: int, campaign_id: int) -> Any:
        async with database.connection() as connection:
            return (
                await execute(
                    connection,
                    sa.select(invite_links).where(
                        invite_links.c.user_id == user_id,
                        invite_links.c.campaign_id == campaign_id,
                    ),
                )
            ).first()

    async def _keep(
        self,
        user_id: int,
        campaign: Campaign,
        chat_id: int,
        link: str,
        code: ReferralCode,
        stored: Any,
    ) -> str:
        """Store the new link in place of `stored`, unless another one replaced it first:
        the link that is kept."""
        values = {
            "chat_id": chat_id,
            "link": link,
            "code": code.code,
            "join_request": bool(campaign.rules.telegram and campaign.rules.telegram.join_requests),
            "created_at": clock.utcnow(),
            "revoked_at": None,
        }
        try:
            async with database.transaction(), database.connection() as connection:
                if stored is None:
                    await execute(
                        connection,
                        sa.insert(invite_links).values(
                            user_id=user_id, campaign_id=campaign.id, **values
                        ),
                    )
                    return link
                replaced = await execute(
                    connection,
                    sa.update(invite_links)
                    .where(invite_links.c.id == stored.id, invite_links.c.link == stored.link)
                    .values(values),
                )
                if replaced.rowcount == 1:
                    return link
        except IntegrityError:
            pass
        now = await self._stored_link(user_id, campaign.id)
        assert now is not None, "a link another replica stored"
        return str(now.link)

    # -- joins, leaves, requests ------------------------------------------------------------

    async def member_changed(
        self,
        *,
        update_id: int,
        chat_id: int,
        person: TelegramProfile,
        was_member: bool,
        is_member: bool,
        link: str | None,
    ) -> None:
        """A `chat_member` update. A join by a participant's link of a new person (no account,
        never seen in this chat as a member) signs them up as a referral in the link's
        campaign (usual review; the referrer is told) and starts the wait for their stay; a
        leave before qualifying shows the referral as left, and a rejoin by the same link
        starts the wait again. Each update is applied once."""
        if was_member == is_member:
            return
        async with database.transaction(), database.connection() as connection:
            row = await self._lock_member(connection, chat_id, person.telegram_id, update_id)
            if row is None:
                return  # applied before (redelivered, or seen by another replica)
            now = clock.utcnow()
            if not is_member:
                await self._left(connection, row, now)
                return
            found = await self._link_row(connection, chat_id, link) if link else None
            if row.referral_id is not None:
                # Known already: a join request approved, or a rejoin (counted again only
                # by the same link, and only while the referral is not qualified).
                requested = row.status == REQUESTED
                rejoined = row.status == LEFT and found is not None and found.id == row.link_id
                if (requested or rejoined) and await self._waiting(connection, row.referral_id):
                    await self._start_wait(connection, row, found_link=row.link_id, now=now)
                    return
                await self._set_member(connection, row, status=MEMBER, now=now)
                return
            # Counted only for someone this chat never had as a member (as far as the bot saw).
            new = found is not None and row.joined_at is None
            referral_id = await self._sign_up(found, person) if new else None
            if found is None or referral_id is None:
                await self._set_member(connection, row, status=MEMBER, now=now)
                return
            await self._start_wait(
                connection, row, found_link=found.id, now=now, referral_id=referral_id
            )
            return

    async def join_requested(
        self, *, update_id: int, chat_id: int, person: TelegramProfile, link: str | None
    ) -> bool | None:
        """A `chat_join_request` by a participant's link: the friend is signed up as a referral
        at once. True: approved (queued), False: declined (a rejected referral), None: held
        for the operator's review (their decision approves or declines it), or not ours to
        decide (another link, or seen before)."""
        if not link:
            return None
        async with database.transaction(), database.connection() as connection:
            found = await self._link_row(connection, chat_id, link)
            if found is None:
                return None  # a link the chat's own admins made: theirs to decide
            row = await self._lock_member(connection, chat_id, person.telegram_id, update_id)
            if row is None:
                return None
            now = clock.utcnow()
            referral_id = row.referral_id
            if referral_id is None and row.joined_at is None:
                referral_id = await self._sign_up(found, person)
            status = await self._status(connection, referral_id) if referral_id else None
            held = status == PENDING_REVIEW
            await execute(
                connection,
                sa.update(chat_members)
                .where(*_member_key(row))
                .values(
                    status=REQUESTED,
                    referral_id=referral_id,
                    link_id=found.id if referral_id is not None else row.link_id,
                    updated_at=now,
                ),
            )
            if not held:  # a rejected referral's friend is declined; anyone else let in
                await self.jobs.enqueue(
                    TELEGRAM_JOIN_DECISION,
                    {
                        "chat_id": chat_id,
                        "telegram_id": person.telegram_id,
                        "approve": status != REJECTED,
                    },
                )
            return None if held else status != REJECTED

    async def _lock_member(
        self, connection: Any, chat_id: int, telegram_id: int, update_id: int
    ) -> Any:
        """The person's row in this chat, locked; None when this update was applied before
        (its id is recorded in this transaction: a second sight of it waits on the first,
        then finds it)."""
        now = clock.utcnow()
        if not await _insert_once(
            connection, chat_updates, {"update_id": update_id, "applied_at": now}, ("update_id",)
        ):
            return None
        # Known before, or made at this moment by another replica (we wait on it): either way
        # the row is there to lock.
        await _insert_once(
            connection,
            chat_members,
            {
                "chat_id": chat_id,
                "telegram_id": telegram_id,
                "status": LEFT,
                "joins": 0,
                "updated_at": now,
            },
            ("chat_id", "telegram_id"),
        )
        return (
            await execute_built(
                connection, _LOCK, {"k_chat_id": chat_id, "k_telegram_id": telegram_id}
            )
        ).one()

    async def purge_updates(self) -> int:
        """Forget the chat updates applied more than UPDATES_KEPT_DAYS ago (Telegram redelivers
        within a day); the workers' housekeeping."""
        return await delete_finished(
            chat_updates,
            chat_updates.c.applied_at,
            cutoff=clock.utcnow() - dt.timedelta(days=UPDATES_KEPT_DAYS),
        )

    @staticmethod
    async def _link_row(connection: Any, chat_id: int, link: str) -> Any:
        return (
            await execute_built(connection, _LINK, {"link": link[:255], "chat_id": chat_id})
        ).first()

    async def _sign_up(self, link: Any, person: TelegramProfile) -> int | None:
        """A new person joining by a participant's link: their account, referred with the
        link's code (its campaign running, the usual review). None for someone who has an
        account already (a referrer is set only when one is made) or a code that no longer
        signs anyone up."""
        try:  # the sign-up's own transaction is a savepoint here: a refusal undoes it alone
            user, claimed = await self.accounts.sign_up_telegram(
                telegram_id=person.telegram_id,
                full_name=person.full_name,
                username=person.username,
                language_code=person.language_code,
                referral_code=link.code,
            )
        except DomainError as refused:  # an account already (`already_registered`), a code …
            log.info("join by link %s not counted: %s", link.id, refused.code)
            return None
        return user.id if claimed is not None else None

    @staticmethod
    async def _status(connection: Any, referral_id: int) -> str | None:
        return (
            await execute(
                connection, sa.select(referrals.c.status).where(referrals.c.id == referral_id)
            )
        ).scalar()

    @staticmethod
    async def _waiting(connection: Any, referral_id: int) -> bool:
        """Whether the referral still waits to qualify."""
        qualified_at = (
            await execute(
                connection,
                sa.select(referrals.c.qualified_at).where(referrals.c.id == referral_id),
            )
        ).first()
        return qualified_at is not None and qualified_at[0] is None

    async def _start_wait(
        self,
        connection: Any,
        row: Any,
        *,
        found_link: int | None,
        now: dt.datetime,
        referral_id: int | None = None,
    ) -> None:
        """A member again (or for the first time) by the referral's link: the stay is checked
        `qualify_after_days` from now (0: now, without asking)."""
        referral_id = referral_id if referral_id is not None else row.referral_id
        joins = row.joins + 1
        await execute_built(
            connection,
            _WAITING,
            {
                "k_chat_id": row.chat_id,
                "k_telegram_id": row.telegram_id,
                "v_referral_id": referral_id,
                "v_link_id": found_link,
                "v_joins": joins,
                "now": now,
            },
        )
        # Not left (any more), and the campaign whose rules say how long the wait is.
        campaign_id = (
            await execute_built(connection, _NOT_LEFT, {"referral_id": referral_id})
        ).scalar()
        campaign = await self.campaigns.by_id(int(campaign_id))
        days = campaign.rules.telegram.qualify_after_days if campaign.rules.telegram else 0
        await self.jobs.enqueue(
            TELEGRAM_STAY,
            {
                "chat_id": row.chat_id,
                "telegram_id": row.telegram_id,
                "referral_id": referral_id,
                "joins": joins,
                "check": days > 0,
            },
            delay=days * 86400,
        )

    @staticmethod
    async def _set_member(connection: Any, row: Any, *, status: str, now: dt.datetime) -> None:
        """A member now (since their first join seen, `joined_at`), or gone."""
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status == MEMBER and row.joined_at is None:
            values["joined_at"] = now
        await execute(connection, sa.update(chat_members).where(*_member_key(row)).values(values))

    async def _left(self, connection: Any, row: Any, now: dt.datetime) -> None:
        """Gone from the chat: a referral still waiting to qualify is shown as left."""
        await self._set_member(connection, row, status=LEFT, now=now)
        if row.referral_id is not None:
            await execute(
                connection,
                sa.update(referrals)
                .where(
                    referrals.c.id == row.referral_id,
                    referrals.c.qualified_at.is_(None),
                    referrals.c.left_at.is_(None),
                )
                .values(left_at=now),
            )

    # -- the bot's jobs ---------------------------------------------------------------------

    async def stay_due(self, payload: dict[str, Any], api: ChatApi) -> str:
        """The stay check of one join: still a member → the referral qualifies (a conversion
        `telegram.stayed`, `tg-stay:<chat>:<user>`, once by its external id); gone → left,
        nothing granted. Returns what happened (for the log and the tests)."""
        chat_id, telegram_id = int(payload["chat_id"]), int(payload["telegram_id"])
        referral_id = int(payload["referral_id"])
        row = await self._member(chat_id, telegram_id)
        if (
            row is None
            or row.referral_id != referral_id
            or row.joins != int(payload["joins"])
            or not is_valid_id(referral_id)
        ):
            return "stale"  # a later join (or leave) has its own check
        if row.status != MEMBER:
            return LEFT
        if payload.get("check", True) and not await api.is_member(chat_id, telegram_id):
            async with database.transaction(), database.connection() as connection:
                locked = (
                    await execute(
                        connection,
                        sa.select(chat_members)
                        .where(*_member_key(row), chat_members.c.joins == row.joins)
                        .with_for_update(),
                    )
                ).first()
                if locked is not None:
                    await self._left(connection, locked, clock.utcnow())
            return LEFT
        await self.conversions.convert(
            user_id=referral_id,
            email=None,
            event=STAYED_EVENT,
            external_id=f"tg-stay:{chat_id}:{telegram_id}",
            amount=None,
            currency=None,
        )
        return QUALIFIED

    async def decision_due(self, payload: dict[str, Any], api: ChatApi) -> None:
        """A join request approved or declined in Telegram (a job: retried until it is)."""
        chat_id, telegram_id = int(payload["chat_id"]), int(payload["telegram_id"])
        approve = bool(payload.get("approve"))
        await api.decide_join(chat_id, telegram_id, approve=approve)
        if not approve:
            async with database.transaction(), database.connection() as connection:
                await execute(
                    connection,
                    sa.update(chat_members)
                    .where(
                        chat_members.c.chat_id == chat_id,
                        chat_members.c.telegram_id == telegram_id,
                        chat_members.c.status == REQUESTED,
                    )
                    .values(status=LEFT, updated_at=clock.utcnow()),
                )

    @staticmethod
    async def _member(chat_id: int, telegram_id: int) -> Any:
        async with database.connection() as connection:
            keys = {"k_chat_id": chat_id, "k_telegram_id": telegram_id}
            return (await execute(connection, _MEMBER_ROW, keys)).first()

    # -- sharing ----------------------------------------------------------------------------

    async def chat_link(
        self, *, owner_id: int, campaign: Campaign, code: str
    ) -> tuple[str, str | None] | None:
        """The live invite link the bot made for this code, with its chat's title (for the
        landing page of a campaign grown inside Telegram)."""
        async with database.connection() as connection:
            row = (
                await execute(
                    connection,
                    sa.select(invite_links.c.link, telegram_chats.c.title)
                    .select_from(
                        invite_links.outerjoin(
                            telegram_chats, telegram_chats.c.chat_id == invite_links.c.chat_id
                        )
                    )
                    .where(
                        invite_links.c.user_id == owner_id,
                        invite_links.c.campaign_id == campaign.id,
                        invite_links.c.code == code,
                        invite_links.c.revoked_at.is_(None),
                    ),
                )
            ).first()
        return (str(row.link), row.title) if row is not None else None

    async def offers(self, *, user: User) -> tuple[list[Invitation], ReferralCode | None]:
        """What the user may share from any chat (inline mode): their live invite links of
        running chat campaigns, and their code in the default campaign. Nothing is made here:
        an inline answer must be quick."""
        links: list[Invitation] = []
        for campaign in await self.running_chat_campaigns():
            stored = await self._stored_link(user.id, campaign.id)
            if stored is not None and stored.revoked_at is None:
                title = (await self.chat_statuses([stored.chat_id]))[stored.chat_id].title
                links.append(Invitation(campaign, title, stored.link, stored.code))
        return links, await self.referrals.active_code(owner_id=user.id)


async def _insert_once(
    connection: Any, table: sa.Table, row: dict[str, Any], keys: tuple[str, ...]
) -> bool:
    """Insert the row unless its key is taken (waiting on a concurrent insert of it); whether
    it was inserted. ON CONFLICT DO NOTHING where there is one; a savepoint on MySQL."""
    dialect = connection.dialect.name
    if is_mysql(dialect):
        try:
            async with database.transaction():
                await execute(connection, sa.insert(table).values(row))
        except IntegrityError:
            return False
        return True
    statement = _insert_once_built(dialect, table, keys, tuple(row))
    values = {f"v_{name}": value for name, value in row.items()}
    return bool((await execute_built(connection, statement, values)).rowcount)


@functools.cache
def _insert_once_built(
    dialect: str, table: sa.Table, keys: tuple[str, ...], names: tuple[str, ...]
) -> Any:
    return (
        insert_of(dialect)(table)
        .values({name: sa.bindparam(f"v_{name}", type_=table.c[name].type) for name in names})
        .on_conflict_do_nothing(index_elements=list(keys))
    )


# The statements of a join, built once (on PostgreSQL `execute_built` runs them on asyncpg).
_MEMBER = (
    chat_members.c.chat_id == sa.bindparam("k_chat_id"),
    chat_members.c.telegram_id == sa.bindparam("k_telegram_id"),
)
_MEMBER_ROW = sa.select(chat_members).where(*_MEMBER)
_LOCK = _MEMBER_ROW.with_for_update()
_LINK = sa.select(invite_links).where(
    invite_links.c.link == sa.bindparam("link"),
    invite_links.c.chat_id == sa.bindparam("chat_id"),
    invite_links.c.revoked_at.is_(None),
)
_WAITING = (
    sa.update(chat_members)
    .where(*_MEMBER)
    .values(
        status=MEMBER,
        referral_id=sa.bindparam("v_referral_id"),
        link_id=sa.bindparam("v_link_id"),
        joins=sa.bindparam("v_joins"),
        joined_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
    )
)
_NOT_LEFT = (
    sa.update(referrals)
    .where(referrals.c.id == sa.bindparam("referral_id"))
    .values(left_at=sa.null())
    .returning(referrals.c.campaign_id)
)


def _member_key(row: Any) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        chat_members.c.chat_id == row.chat_id,
        chat_members.c.telegram_id == row.telegram_id,
    )
