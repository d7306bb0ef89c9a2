"""The public views of a code, the hot read path: their cache keys, the cached entry's shape,
the leases a miss fills under, the rate limiter's prefetch, and their invalidation.

A view is kept as the JSON the API answers with, so a hit runs no SQL, validation or
serialisation; `code_view` gives the typed value for the pages.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core.campaigns.tables import DEFAULT_ID, DEFAULT_KEY
from core.infra import clock, metrics
from core.infra.cache import NO_FILL, CodeCache, Lookup
from core.infra.db import Read
from core.infra.emails import folded, normalize_email
from core.infra.ratelimit import Hit, RateLimiter
from core.referrals.errors import ReferralCodeNotFound
from core.referrals.models import ReferralCode
from core.referrals.rules import LIVE_CODE, OWNER_USABLE, active_clauses, is_valid_code
from core.referrals.schemas import PublicCode, PublicCodeWithReferrer, Referrer
from core.users.models import Person, User

MAX_EMAIL_LENGTH = 320
_codes = ReferralCode.ormar_config.table
_users = User.ormar_config.table
CACHE_HITS = metrics.cache_reads.labels("hit")
CACHE_MISSES = metrics.cache_reads.labels("miss")

_LIVE_CODE_BY_EMAIL = Read(
    sa.select(_codes.c.code, _codes.c.expires_at)
    .select_from(_users.join(_codes, _codes.c.owner_id == _users.c.id))
    .where(
        _users.c.email == sa.bindparam("email"),
        _codes.c.campaign_id == DEFAULT_ID,  # the v1 lookup: the default campaign's code
        OWNER_USABLE,
        *active_clauses(sa.bindparam("now", type_=_codes.c.expires_at.type)),
    )
)


# "rc2": views carry their campaign (v1.2); entries of older processes are never read.
def email_key(email: str) -> str:
    return "rc2:e:" + email


def code_key(code: str) -> str:
    return "rc2:c:" + code


def _cache_entry(expires_at: dt.datetime, body: bytes) -> bytes:
    # "<expiry epoch>\n<json>": a hit is checked against the clock without parsing JSON.
    return b"%d\n%s" % (int(expires_at.timestamp()), body)


def read_cache_entry(entry: bytes) -> bytes | None:
    """The JSON of a cached public view (empty: "no live code", see `_fill_missing`), or
    None once the entry has expired."""
    expires, _, body = entry.partition(b"\n")
    return body if expires.isdigit() and int(expires) > clock.timestamp() else None


def _hit(body: bytes) -> bytes:
    CACHE_HITS.inc()
    if not body:  # remembered as missing
        raise ReferralCodeNotFound()
    return body


class PublicViews:
    def __init__(self, *, cache: CodeCache, ttl: int, missing_ttl: int = 0) -> None:
        self.cache = cache
        self.ttl = ttl
        self.missing_ttl = missing_ttl

    @staticmethod
    def email_cache_key(email: str) -> str | None:
        """The cache key `by_email` uses for this email (None: never cached)."""
        if not email or len(email) > MAX_EMAIL_LENGTH:
            return None
        return email_key(folded(email))

    @staticmethod
    def code_cache_key(code: str) -> str | None:
        """The cache key `by_code` uses for this code (None: never cached)."""
        return code_key(code) if is_valid_code(code) else None

    async def cached(self, key: str, *, limiter: RateLimiter, hit: Hit | None) -> Lookup:
        """The cached view under `key`: its JSON on a hit; on a miss, the lease that `by_email`
        / `by_code` take as `seen`, so the read is not repeated. Counts `hit` against its limit
        first (raising `RateLimited`), in the same Redis round trip as the read when the
        counters and the cache share Redis. Hits run no SQL."""
        prefetch = None
        if hit is not None and limiter.enabled:
            prefetch = await limiter.check_and_get(hit, redis_key=key)
        if prefetch is not None:
            seen = await self.cache.lookup_prefetched(key, prefetch.value)
        else:
            seen = await self.cache.lookup(key)
        if seen.value is None:
            return seen
        body = read_cache_entry(seen.value)
        if body is None:  # its code expired: read from the database, nothing to fill
            return NO_FILL
        return Lookup(_hit(body))

    async def by_email(self, email: str, *, seen: Lookup | None = None) -> bytes:
        """`PublicCode` JSON of the active code of the user with this email. `seen`: what
        `cached` already read of its cache key (a miss), so the cache is not asked twice."""
        email = folded(email)
        if len(email) > MAX_EMAIL_LENGTH:
            raise ReferralCodeNotFound()
        key = email_key(email)
        if seen is None:
            seen = await self.cache.lookup(key)
        if seen.value is not None and (body := read_cache_entry(seen.value)) is not None:
            return _hit(body)
        CACHE_MISSES.inc()
        normalized = normalize_email(email)  # only on a miss: a hit was a valid email
        # One statement whether or not the email is registered: an unknown email and a known
        # one without a code cost the same (and are remembered the same), so timing does not
        # tell which emails exist.
        row = await _LIVE_CODE_BY_EMAIL.first(email=normalized, now=clock.utcnow())
        if row is None:
            if normalized == email:
                await self._fill_missing(key, seen.lease)
            raise ReferralCodeNotFound()
        code, expires_at = row
        body = (
            PublicCode(code=code, expires_at=expires_at, campaign=DEFAULT_KEY)
            .model_dump_json()
            .encode()
        )
        if normalized == email:  # cache only under the key that invalidation will name
            await self._fill(key, seen.lease, expires_at, body)
        return body

    async def by_code(self, code: str, *, seen: Lookup | None = None) -> bytes:
        """`PublicCodeWithReferrer` JSON of an active code (`seen` as for `by_email`)."""
        if not is_valid_code(code):
            raise ReferralCodeNotFound()
        key = code_key(code)
        if seen is None:
            seen = await self.cache.lookup(key)
        if seen.value is not None and (body := read_cache_entry(seen.value)) is not None:
            return _hit(body)
        CACHE_MISSES.inc()
        row = await LIVE_CODE.first(code=code, now=clock.utcnow())
        if row is None:
            await self._fill_missing(key, seen.lease)
            raise ReferralCodeNotFound()
        expires_at, owner_id, owner_name, _, campaign = row
        body = (
            PublicCodeWithReferrer(
                code=code,
                expires_at=expires_at,
                campaign=campaign,
                referrer=Referrer(id=owner_id, full_name=owner_name),
            )
            .model_dump_json()
            .encode()
        )
        await self._fill(key, seen.lease, expires_at, body)
        return body

    async def code_view(self, code: str) -> PublicCodeWithReferrer:
        """The view `by_code` serves, as a value (the landing page, its QR code and preview)."""
        return PublicCodeWithReferrer.model_validate_json(await self.by_code(code))

    # -- invalidation ---------------------------------------------------------------------

    async def forget(self, owner: Person, *codes: str | None) -> None:
        """Drop the views of `codes` and of the owner's email (after a code or owner changed)."""
        keys = [code_key(code) for code in codes if code]
        if owner.email:
            keys.append(email_key(owner.email))
        await self.cache.invalidate(*keys)

    async def forget_owner(self, owner: Person, *, codes: list[str] | None = None) -> None:
        """Drop the views that show this owner (after a name change, an erasure: `codes` names
        the codes closed meanwhile)."""
        if codes is None:
            live = await ReferralCode.objects.filter(owner=owner.id, closed_at=None).all()
            codes = [code.code for code in live]
        await self.forget(owner, *codes)

    async def _fill(
        self, key: str, lease: bytes | None, expires_at: dt.datetime, body: bytes
    ) -> None:
        ttl = min(self.ttl, expires_at.timestamp() - clock.timestamp())
        await self.cache.fill(key, _cache_entry(expires_at, body), ttl, lease=lease)

    async def _fill_missing(self, key: str, lease: bytes | None) -> None:
        """Remember for `missing_ttl` seconds that `key` shows no live code: an empty view,
        dropped by the same invalidations as a view (a code created, an owner's email or
        block changed); a lookup in that window answers 404 without SQL."""
        if self.missing_ttl > 0:
            until = clock.utcnow() + dt.timedelta(seconds=self.missing_ttl)
            await self.cache.fill(key, _cache_entry(until, b""), self.missing_ttl, lease=lease)
