"""Campaigns: made, listed, changed by operators (each change audited, `campaign.updated` sent);
read by the codes, sign-ups and conversions that belong to them."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.campaigns.errors import (
    CampaignKeyTaken,
    CampaignNotActive,
    CampaignNotFound,
    DefaultCampaign,
)
from core.campaigns.rules import Rules, check, resolve
from core.campaigns.tables import (
    ACTIVE,
    DEFAULT_ID,
    DEFAULT_KEY,
    ENDED,
    STATUSES,
    TELEGRAM_CHAT,
    campaigns,
)
from core.infra import clock
from core.infra.db import Read, database, execute, forget, remembered
from core.infra.errors import InvalidInput
from core.infra.events import Events
from core.infra.settings import ProgramSettings
from core.jobs.queue import JobQueue
from core.operators.service import Operator, OperatorService

KEY_RE = re.compile(r"[a-z0-9-]{1,40}")
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    key: str
    name: str
    status: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    rules: Rules
    created_at: dt.datetime

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_ID

    def running(self, now: dt.datetime) -> bool:
        """Active, and inside its dates: its codes work for sign-ups."""
        return (
            self.status == ACTIVE
            and (self.starts_at is None or self.starts_at <= now)
            and (self.ends_at is None or now < self.ends_at)
        )

    def as_json(self) -> dict[str, Any]:
        """The API's `Campaign` (and `campaign.updated`'s data)."""
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "status": self.status,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "rules": self.rules.as_json(),
            "created_at": self.created_at,
        }


# A campaign's row, in the order `Campaigns.of_row` reads it (a join may select it too).
CAMPAIGN_COLUMNS = (
    campaigns.c.id,
    campaigns.c.key,
    campaigns.c.name,
    campaigns.c.status,
    campaigns.c.starts_at,
    campaigns.c.ends_at,
    campaigns.c.rules,
    campaigns.c.created_at,
)
_BY_KEY = Read(sa.select(*CAMPAIGN_COLUMNS).where(campaigns.c.key == sa.bindparam("key")))
_BY_ID = Read(sa.select(*CAMPAIGN_COLUMNS).where(campaigns.c.id == sa.bindparam("id")))


class Campaigns:
    def __init__(
        self,
        *,
        settings: ProgramSettings,
        events: Events,
        operators: OperatorService,
        jobs: JobQueue | None = None,
    ) -> None:
        self.settings = settings  # what rules left out follow (the default campaign's, at first)
        self.events = events
        self.operators = operators
        self.jobs = jobs  # the bot's chat check, for campaigns that name a chat

    async def _check_chat(self, before: Campaign | None, after: Campaign) -> None:
        """In the change's transaction: a campaign that names (or named) a chat has the bot
        check that chat and, once the campaign is not running, revoke its invite links."""
        if self.jobs is not None and (
            after.rules.telegram or (before is not None and before.rules.telegram)
        ):
            await self.jobs.enqueue(TELEGRAM_CHAT, {"campaign_id": after.id})

    async def named_chats(self) -> dict[int, list[Campaign]]:
        """The chats campaigns that are not ended name, each with its campaigns."""
        chats: dict[int, list[Campaign]] = {}
        for campaign in await self.all():
            if campaign.rules.telegram is not None and campaign.status != ENDED:
                chats.setdefault(campaign.rules.telegram.chat_id, []).append(campaign)
        return chats

    def of_row(self, row: Sequence[Any]) -> Campaign:
        """A campaign from a row of `CAMPAIGN_COLUMNS`, in order (a Read gives plain tuples)."""
        id_, key, name, status, starts_at, ends_at, rules, created_at = row
        if isinstance(rules, str):  # JSON as text, from a driver's own read
            rules = json.loads(rules)
        return Campaign(
            id_,
            key,
            name,
            status,
            starts_at,
            ends_at,
            resolve(rules or {}, self.settings),
            created_at,
        )

    # -- reads ----------------------------------------------------------------------------

    async def by_key(self, key: str | None) -> Campaign:
        """The campaign of this key (None: the default one), or `campaign_not_found`."""
        key = DEFAULT_KEY if key is None else key
        row = await _BY_KEY.first(key=key) if KEY_RE.fullmatch(key) else None
        if row is None:
            raise CampaignNotFound()
        return self.of_row(row)

    async def by_id(self, campaign_id: int) -> Campaign:
        """The campaign of this id; read once per transaction (a sign-up by a chat join asks
        for its campaign's rules twice)."""
        if database.get_transaction_connection() is not None:
            return await remembered(f"campaign:{campaign_id}", lambda: self._by_id(campaign_id))
        return await self._by_id(campaign_id)

    async def _by_id(self, campaign_id: int) -> Campaign:
        row = await _BY_ID.first(id=campaign_id)
        if row is None:
            raise CampaignNotFound()
        return self.of_row(row)

    async def running(self, campaign_id: int) -> Campaign:
        """The campaign a sign-up's code belongs to, or `campaign_not_active`."""
        campaign = await self.by_id(campaign_id)
        if not campaign.running(clock.utcnow()):
            raise CampaignNotActive()
        return campaign

    async def all(self) -> list[Campaign]:
        async with database.connection() as connection:
            rows = (
                await execute(connection, sa.select(*CAMPAIGN_COLUMNS).order_by(campaigns.c.id))
            ).all()
        return [self.of_row(row) for row in rows]

    # -- changes --------------------------------------------------------------------------

    async def create(
        self,
        *,
        operator: Operator,
        key: str,
        name: str,
        starts_at: dt.datetime | None = None,
        ends_at: dt.datetime | None = None,
        rules: dict[str, Any] | None = None,
    ) -> Campaign:
        if not KEY_RE.fullmatch(key):
            raise InvalidInput("key is 1-40 characters of a-z, 0-9 and '-'.", field="key")
        _check_name(name)
        _check_dates(starts_at, ends_at)
        stored = check(rules or {}, self.settings)
        now = clock.utcnow()
        try:
            async with database.transaction(), database.connection() as connection:
                row = (
                    await execute(
                        connection,
                        sa.insert(campaigns)
                        .values(
                            key=key,
                            name=name,
                            status=ACTIVE,
                            starts_at=starts_at,
                            ends_at=ends_at,
                            rules=stored,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(*CAMPAIGN_COLUMNS),
                    )
                ).one()
                campaign = self.of_row(row)
                await self._check_chat(None, campaign)
                await self.operators.record(
                    operator=operator, action="campaign.created", target=f"campaign:{key}"
                )
                await self.events.emit("campaign.updated", campaign.as_json())
        except IntegrityError:
            raise CampaignKeyTaken() from None
        return campaign

    async def update(
        self,
        *,
        operator: Operator,
        key: str,
        name: str = _UNSET,
        status: str = _UNSET,
        starts_at: dt.datetime | None = _UNSET,
        ends_at: dt.datetime | None = _UNSET,
        rules: dict[str, Any] = _UNSET,
    ) -> Campaign:
        """Change what is given; rules apply to what happens next, granted rewards stay."""
        changes: dict[str, Any] = {}
        if name is not _UNSET:
            _check_name(name)
            changes["name"] = name
        if status is not _UNSET:
            if status not in STATUSES:
                raise InvalidInput(f"status is one of {', '.join(STATUSES)}.", field="status")
            changes["status"] = status
        if rules is not _UNSET:
            changes["rules"] = check(rules, self.settings)
        async with database.transaction(), database.connection() as connection:
            current = (
                (
                    await execute(
                        connection,
                        sa.select(*CAMPAIGN_COLUMNS)
                        .where(campaigns.c.key == key)
                        .with_for_update(),
                    )
                ).first()
                if KEY_RE.fullmatch(key)
                else None
            )
            if current is None:
                raise CampaignNotFound()
            if current.id == DEFAULT_ID and (
                changes.get("status") == ENDED or (ends_at is not _UNSET and ends_at is not None)
            ):
                raise DefaultCampaign()
            if starts_at is not _UNSET:
                changes["starts_at"] = starts_at
            if ends_at is not _UNSET:
                changes["ends_at"] = ends_at
            _check_dates(
                changes.get("starts_at", current.starts_at), changes.get("ends_at", current.ends_at)
            )
            if changes:
                forget(f"campaign:{current.id}")
                changes["updated_at"] = clock.utcnow()
                await execute(
                    connection,
                    sa.update(campaigns).where(campaigns.c.id == current.id).values(**changes),
                )
            row = (
                await execute(
                    connection, sa.select(*CAMPAIGN_COLUMNS).where(campaigns.c.id == current.id)
                )
            ).one()
            campaign = self.of_row(row)
            await self._check_chat(self.of_row(current), campaign)
            await self.operators.record(
                operator=operator, action="campaign.updated", target=f"campaign:{key}"
            )
            await self.events.emit("campaign.updated", campaign.as_json())
        return campaign


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100 or len(name) > 100:
        raise InvalidInput("name is 1-100 characters.", field="name")


def _check_dates(starts_at: dt.datetime | None, ends_at: dt.datetime | None) -> None:
    for field, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{field} needs a UTC offset.", field=field)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at.", field="ends_at")
