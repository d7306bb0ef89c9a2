"""Referral codes: create, look up, delete, claim at sign-up; and the referrals they bring."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.campaigns.errors import CampaignNotActive
from core.campaigns.service import Campaign
from core.campaigns.tables import DEFAULT_ID, DEFAULT_KEY, ENDED
from core.infra import clock
from core.infra.db import MAX_ID, Read, database, execute, in_transaction, increment
from core.infra.events import Events, NoEvents
from core.infra.pagination import decode_moment_cursor, encode_moment_cursor
from core.referrals.errors import (
    ActiveCodeExists,
    CodeTaken,
    InvalidCodeRequest,
    NoActiveCode,
    ReferralCodeExpired,
    ReferralCodeInvalid,
)
from core.referrals.models import ReferralCode, code_data
from core.referrals.rules import (
    LIVE_CODE,
    RESERVED_PREFIX,
    active_clauses,
    ended_clauses,
    generate_code,
    is_active,
    is_valid_code,
    refusal,
)
from core.referrals.tables import code_span_days, code_spans
from core.referrals.tables import referrals as referral_rows
from core.referrals.views import PublicViews
from core.users.models import Person, User
from core.users.service import user_of

MAX_LIFETIME = dt.timedelta(days=365)
_codes = ReferralCode.ormar_config.table
_users = User.ormar_config.table
# A sign-up's claim of its code, and the owner's count of referrals (built once).
_CLAIM = (
    sa.update(_codes)
    .where(_codes.c.code == sa.bindparam("k_code"), *active_clauses(sa.bindparam("k_now")))
    .values(uses=_codes.c.uses + 1)
    .returning(*_codes.columns)
)
_COUNT = (
    sa.update(_users)
    .where(_users.c.id == sa.bindparam("k_owner_id"), _users.c.blocked_at.is_(None))
    .values(referral_count=_users.c.referral_count + 1)
    .returning(*_users.columns)
)


@dataclass(frozen=True, slots=True)
class Referral:
    """One person who joined with a referrer's code, as the list shows them."""

    id: int
    email: str | None
    full_name: str | None
    created_at: dt.datetime
    referral_code: str | None
    status: str


_PAGE_COLUMNS = (
    _users.c.id,
    _users.c.email,
    _users.c.full_name,
    _users.c.created_at,
    _users.c.referral_code,
)


def _page_of_referrals(*where: sa.ColumnElement[bool], offset: bool = False) -> sa.Select[Any]:
    """Newest first, one more than the page (it tells whether another page follows), each
    row with its review status and the referrer's counter: one round trip, served by
    ix_users_referrer_created. The status is looked up for the page's rows only (an offset's
    skipped rows never pay for it)."""
    owner = _users.alias("owner")
    total = sa.select(owner.c.referral_count).where(owner.c.id == sa.bindparam("referrer"))
    page = (
        sa.select(*_PAGE_COLUMNS)
        .where(_users.c.referrer_id == sa.bindparam("referrer"), *where)
        .order_by(_users.c.created_at.desc(), _users.c.id.desc())
        .limit(sa.bindparam("limit"))
    )
    if offset:
        page = page.offset(sa.bindparam("offset"))
    rows = page.subquery("page")
    # Every referral has its row (migration 0006 gave the older ones theirs).
    status = (
        sa.select(referral_rows.c.status).where(referral_rows.c.id == rows.c.id).scalar_subquery()
    )
    return sa.select(
        *rows.c, status.label("status"), total.scalar_subquery().label("total")
    ).order_by(rows.c.created_at.desc(), rows.c.id.desc())


_FIRST_PAGE = Read(_page_of_referrals())
_AFTER_AT = sa.bindparam("after_at", type_=_users.c.created_at.type)
_PAGE_AFTER = Read(  # by cursor: the same index range at any depth
    _page_of_referrals(
        # (created_at, id) < (after_at, after_id), spelt so that every database starts the
        # index range at after_at (MariaDB scans the whole referrer for a row comparison).
        _users.c.created_at <= _AFTER_AT,
        sa.or_(
            _users.c.created_at < _AFTER_AT,
            _users.c.id < sa.bindparam("after_id", type_=sa.Integer()),
        ),
    )
)
_PAGE_AT = Read(_page_of_referrals(offset=True))  # older clients
_REFERRAL_TOTAL = Read(
    sa.select(_users.c.referral_count).where(_users.c.id == sa.bindparam("referrer"))
)


async def _stretch_span(
    owner_id: int, campaign_id: int, *, began: dt.datetime, until: dt.datetime
) -> None:
    """Inside the code's transaction: the owner's span of codes in the campaign reaches
    `until`, and the day counters the funnel reads move with it."""
    connection = in_transaction()
    where = (code_spans.c.owner_id == owner_id, code_spans.c.campaign_id == campaign_id)
    span = (
        await execute(connection, sa.select(code_spans.c.until).where(*where).with_for_update())
    ).first()
    if span is None:
        await execute(
            connection,
            sa.insert(code_spans).values(
                owner_id=owner_id, campaign_id=campaign_id, began_at=began, until=until
            ),
        )
        _span_day(campaign_id, began, began=1)
        _span_day(campaign_id, until, ended=1)
    elif until > span.until:
        await _move_span(connection, where, campaign_id, span.until, until)


async def _cut_span(connection: Any, owner_id: int, campaign_id: int) -> None:
    """After a code closed early: the span ends where the owner's codes there now end."""
    where = (code_spans.c.owner_id == owner_id, code_spans.c.campaign_id == campaign_id)
    span = (
        await execute(connection, sa.select(code_spans.c.until).where(*where).with_for_update())
    ).first()
    ends = sa.case(
        (
            sa.and_(_codes.c.closed_at.is_not(None), _codes.c.closed_at < _codes.c.expires_at),
            _codes.c.closed_at,
        ),
        else_=_codes.c.expires_at,
    )
    latest = (
        await execute(
            connection,
            sa.select(sa.func.max(ends)).where(
                _codes.c.owner_id == owner_id, _codes.c.campaign_id == campaign_id
            ),
        )
    ).scalar()
    if span is not None and latest is not None and latest < span.until:
        await _move_span(connection, where, campaign_id, span.until, latest)


async def _move_span(
    connection: Any, where: Any, campaign_id: int, old: dt.datetime, new: dt.datetime
) -> None:
    await execute(connection, sa.update(code_spans).where(*where).values(until=new))
    _span_day(campaign_id, old, ended=-1)
    _span_day(campaign_id, new, ended=1)


def _span_day(campaign_id: int, moment: dt.datetime, **counts: int) -> None:
    day = moment.astimezone(dt.UTC).date()
    increment(code_span_days, {"campaign_id": campaign_id, "day": day}, **counts)


def _campaign(campaign: Campaign | None) -> tuple[int, str]:
    """A code's campaign id and key (None: the default campaign)."""
    return (DEFAULT_ID, DEFAULT_KEY) if campaign is None else (campaign.id, campaign.key)


@dataclass(frozen=True, slots=True)
class ReferralPage:
    items: list[Referral]
    total: int
    next_cursor: str | None = None


class OpenCounter(Protocol):
    async def record(self, referrer_id: int, *, campaign: str, visitor: str, code: str) -> None: ...


class ReferralService:
    def __init__(
        self,
        *,
        views: PublicViews,
        events: Events | None = None,
        deep_link: Callable[[str], str | None] = lambda code: None,
    ) -> None:
        self.views = views  # each change below drops the views it alters
        self.events: Events = events or NoEvents()
        self.deep_link = deep_link  # the code's Telegram link, as the API shows it

    # -- the owner's code ---------------------------------------------------------------

    async def create_code(
        self,
        *,
        owner: Person,
        expires_at: dt.datetime,
        code: str | None = None,
        max_uses: int | None = None,
        campaign: Campaign | None = None,
    ) -> ReferralCode:
        """Issue a new code in `campaign` (None: the default one); the database guarantees
        one live code per owner and campaign. An ended campaign issues none (a paused one
        does: it may resume)."""
        now = clock.utcnow()
        self._check_request(now=now, expires_at=expires_at, code=code, max_uses=max_uses)
        if campaign is not None and campaign.status == ENDED:
            raise CampaignNotActive()
        campaign_id, key = _campaign(campaign)
        expires_at = expires_at.astimezone(dt.UTC)  # the returned row reads like a stored one
        for _ in range(5):
            value = code or generate_code()
            try:
                async with database.transaction():
                    await self._retire_ended_codes(
                        owner_id=owner.id, campaign_id=campaign_id, now=now
                    )
                    created = await ReferralCode.objects.create(
                        code=value,
                        owner=owner.id,
                        campaign_id=campaign_id,
                        created_at=now,
                        expires_at=expires_at,
                        max_uses=max_uses,
                    )
                    await _stretch_span(owner.id, campaign_id, began=now, until=expires_at)
                    await self.events.emit(
                        "referral_code.created",
                        code_data(created, campaign=key, deep_link=self.deep_link),
                    )
            except IntegrityError:
                if await ReferralCode.objects.filter(code=value).exists():
                    if code is not None:
                        raise CodeTaken() from None
                    continue  # a generated value collided: draw another
                raise ActiveCodeExists() from None
            await self.views.forget(owner, value)
            return created
        raise ActiveCodeExists("Could not issue a code; try again.")

    async def active_code(
        self, *, owner_id: int, campaign: Campaign | None = None
    ) -> ReferralCode | None:
        live = await ReferralCode.objects.get_or_none(
            owner=owner_id, campaign_id=_campaign(campaign)[0], closed_at=None
        )
        return live if live is not None and is_active(live, clock.utcnow()) else None

    async def delete_active_code(
        self, *, owner: Person, campaign: Campaign | None = None
    ) -> ReferralCode:
        """Close the owner's active code in `campaign` (None: the default one); it stops
        working at once, cache included."""
        now = clock.utcnow()
        campaign_id, key = _campaign(campaign)
        statement = (
            sa.update(_codes)
            .where(
                _codes.c.owner_id == owner.id,
                _codes.c.campaign_id == campaign_id,
                *active_clauses(now),
            )
            .values(closed_at=now)
            .returning(_codes.c.id)
        )
        async with database.transaction(), database.connection() as connection:
            row = (await execute(connection, statement)).first()
            if row is None:
                raise NoActiveCode()
            await _cut_span(connection, owner.id, campaign_id)
            closed = await ReferralCode.objects.get(id=row.id)
            await self.events.emit(
                "referral_code.deleted",
                code_data(closed, campaign=key, deep_link=self.deep_link),
            )
        await self.views.forget(owner, closed.code)
        return closed

    @staticmethod
    async def close_codes_of(owner_id: int) -> list[str]:
        """Inside the caller's transaction (an erasure): the owner's open codes close (one per
        campaign). Returns them, for `forget_owner` once the change committed."""
        closed = (
            await execute(
                in_transaction(),
                sa.update(_codes)
                .where(_codes.c.owner_id == owner_id, _codes.c.closed_at.is_(None))
                .values(closed_at=clock.utcnow())
                .returning(_codes.c.code),
            )
        ).scalars()
        return list(closed)

    # -- sign-up ------------------------------------------------------------------------

    async def claim(self, code: str) -> ReferralCode:
        """Count one use of an active code, inside the caller's transaction.

        A single conditional UPDATE: concurrent sign-ups can never push `uses` past
        `max_uses`, and a refusal says why the code cannot be used.
        """
        connection = in_transaction()
        if not is_valid_code(code):
            raise ReferralCodeInvalid()
        now = clock.utcnow()
        row = (await execute(connection, _CLAIM, {"k_code": code, "k_now": now})).first()
        if row is not None:
            # The referrer's total, in the same transaction as the use. The update also
            # takes the owner's row, so a block racing this sign-up is one or the other:
            # this waits for the block to commit, then finds the owner blocked (and the
            # caller's transaction, use and all, is rolled back); or the block waits.
            counted = (await execute(connection, _COUNT, {"k_owner_id": row.owner_id})).first()
            if counted is None:
                raise ReferralCodeExpired()
            # The code and its owner as the two UPDATEs left them: no third read.
            values = dict(row._mapping)
            values["owner"] = user_of(counted)
            del values["owner_id"]
            return ReferralCode(**values)
        raise refusal(await ReferralCode.objects.get_or_none(code=code), now)

    async def count_open(self, code: str, *, visitor: str, opens: OpenCounter) -> None:
        """Count `visitor`'s opening of a live code's link (`/start <code>`)."""
        if not is_valid_code(code):
            return
        row = await LIVE_CODE.first(code=code, now=clock.utcnow())
        if row is not None:
            await opens.record(int(row[1]), campaign=row[4], visitor=visitor, code=code)

    async def check_claimable(self, code: str) -> ReferralCode:
        """Raise what `claim` would for a code that cannot be used now (no lock, no write:
        a sign-up calls it to fail fast, before hashing a password; `claim` decides)."""
        if not is_valid_code(code):
            raise ReferralCodeInvalid()
        now = clock.utcnow()
        existing = await ReferralCode.objects.select_related("owner").get_or_none(code=code)
        if existing is None or not is_active(existing, now):
            raise refusal(existing, now)
        if existing.owner.blocked_at is not None:
            raise ReferralCodeExpired()
        return existing

    async def after_claim(self, claimed: ReferralCode) -> None:
        """Once the sign-up committed: a code that just ran out leaves the cache."""
        if claimed.max_uses is not None and claimed.uses >= claimed.max_uses:
            await self.views.forget(claimed.owner, claimed.code)

    # -- referrals ----------------------------------------------------------------------

    async def referrals(
        self, *, referrer_id: int, limit: int, offset: int = 0, cursor: str | None = None
    ) -> ReferralPage:
        """A page of the people who joined with this referrer's codes, newest first.

        By `cursor` (what the previous page's `next_cursor` said) a page costs the same at
        any depth: a range of the (referrer, created_at, id) index. `offset` is still
        accepted for older clients. `total` is the referrer's counter, not a count.
        """
        after = decode_moment_cursor(cursor) if cursor else None
        if after is not None:
            rows = await _PAGE_AFTER.all(
                referrer=referrer_id, limit=limit + 1, after_at=after[0], after_id=after[1]
            )
        elif offset > MAX_ID:  # past any referrer's end (and past what the drivers bind)
            rows = []
        elif offset:
            rows = await _PAGE_AT.all(referrer=referrer_id, limit=limit + 1, offset=offset)
        else:
            rows = await _FIRST_PAGE.all(referrer=referrer_id, limit=limit + 1)
        # Each row carries the total; a page past the end has no row to carry it.
        counted = rows[0] if rows else await _REFERRAL_TOTAL.first(referrer=referrer_id)
        items = [Referral(*row[:-1]) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_moment_cursor(items[-1].created_at, items[-1].id) if more else None
        total = int(counted[-1]) if counted is not None else 0
        return ReferralPage(items=items, total=total, next_cursor=next_cursor)

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    async def _retire_ended_codes(*, owner_id: int, campaign_id: int, now: dt.datetime) -> None:
        """Close the owner's expired or used-up code of the campaign, so a new one may be live."""
        statement = (
            sa.update(_codes)
            .where(
                _codes.c.owner_id == owner_id,
                _codes.c.campaign_id == campaign_id,
                *ended_clauses(now),
            )
            .values(closed_at=now)
        )
        async with database.connection() as connection:
            await execute(connection, statement)

    @staticmethod
    def _check_request(
        *, now: dt.datetime, expires_at: dt.datetime, code: str | None, max_uses: int | None
    ) -> None:
        if expires_at.tzinfo is None:
            raise InvalidCodeRequest("expires_at needs a UTC offset.", field="expires_at")
        if expires_at <= now:
            raise InvalidCodeRequest("expires_at must be in the future.", field="expires_at")
        if expires_at > now + MAX_LIFETIME:
            raise InvalidCodeRequest(
                "expires_at may be at most 365 days ahead.", field="expires_at"
            )
        if code is not None:
            if not is_valid_code(code):
                raise InvalidCodeRequest(
                    "A code is 4-32 characters of A-Z, a-z, 0-9, '_' and '-'.", field="code"
                )
            if code.startswith(RESERVED_PREFIX):
                raise InvalidCodeRequest(
                    f"A code may not start with {RESERVED_PREFIX!r}.", field="code"
                )
        if max_uses is not None and max_uses < 1:
            raise InvalidCodeRequest("max_uses must be at least 1.", field="max_uses")
