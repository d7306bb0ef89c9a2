"""The referral service below HTTP: code values, expiry normalisation, claims and retirement."""

from __future__ import annotations

import datetime as dt

import pytest

from core.infra import clock
from core.infra.db import database
from core.infra.errors import InvalidInput
from core.referrals import rules as referrals
from core.referrals.errors import (
    ReferralCodeExhausted,
    ReferralCodeExpired,
    ReferralCodeInvalid,
)
from core.referrals.models import ReferralCode
from core.users.models import User


def test_generated_codes_are_long_random_and_valid():
    codes = {referrals.generate_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) >= 8
        assert referrals.is_valid_code(code), code
        assert not code.startswith(referrals.RESERVED_PREFIX)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("abcd", True),
        ("A" * 32, True),
        ("a_b-C9", True),
        ("abc", False),
        ("A" * 33, False),
        ("ab cd", False),
        ("abcd\n", False),
        ("ab.cd", False),
        ("äbcd", False),
        ("", False),
    ],
)
def test_code_alphabet(value, valid):
    assert referrals.is_valid_code(value) is valid


@pytest.fixture
async def owner(core) -> User:
    return await User.objects.create(email="owner@example.com", full_name="Owner")


async def test_create_code_stores_and_returns_utc(core, owner):
    moment = (clock.utcnow() + dt.timedelta(days=2)).replace(microsecond=0)
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=-7)))
    created = await core.referrals.create_code(owner=owner, expires_at=local, code="UtcOnly")
    assert created.expires_at == moment
    assert created.expires_at.utcoffset() == dt.timedelta(0)
    stored = await ReferralCode.objects.get(code="UtcOnly")
    assert stored.expires_at == moment
    assert stored.expires_at.utcoffset() == dt.timedelta(0)


async def test_claim_counts_uses_and_says_why_it_refuses(core, owner):
    expires_at = clock.utcnow() + dt.timedelta(minutes=5)
    await core.referrals.create_code(owner=owner, expires_at=expires_at, code="TwoUses", max_uses=2)
    for expected_uses in (1, 2):
        async with database.transaction():
            claimed = await core.referrals.claim("TwoUses")
        assert claimed.uses == expected_uses
        assert claimed.owner.id == owner.id
    for code, refusal in (
        ("TwoUses", ReferralCodeExhausted),
        ("Nope1234", ReferralCodeInvalid),
        ("not a code", ReferralCodeInvalid),
    ):
        with pytest.raises(refusal):
            async with database.transaction():
                await core.referrals.claim(code)
    assert (await ReferralCode.objects.get(code="TwoUses")).uses == 2


async def test_claim_of_an_expired_or_deleted_code(core, owner):
    other = await User.objects.create(email="other@example.com")
    soon = clock.utcnow() + dt.timedelta(minutes=5)
    await core.referrals.create_code(owner=owner, expires_at=soon, code="Expiring")
    await core.referrals.create_code(owner=other, expires_at=soon, code="Deleted1")
    await core.referrals.delete_active_code(owner=other)
    with pytest.raises(ReferralCodeExpired):
        async with database.transaction():
            await core.referrals.claim("Deleted1")
    with clock.shift(dt.timedelta(minutes=5)), pytest.raises(ReferralCodeExpired):
        async with database.transaction():
            await core.referrals.claim("Expiring")
    assert await core.referrals.active_code(owner_id=owner.id) is not None
    with clock.shift(dt.timedelta(minutes=5)):
        assert await core.referrals.active_code(owner_id=owner.id) is None


async def test_a_new_code_retires_the_ended_one(core, owner):
    soon = clock.utcnow() + dt.timedelta(minutes=5)
    await core.referrals.create_code(owner=owner, expires_at=soon, code="OldOne1")
    with clock.shift(dt.timedelta(minutes=10)):
        later = clock.utcnow() + dt.timedelta(days=1)
        await core.referrals.create_code(owner=owner, expires_at=later, code="NewOne1")
    old = await ReferralCode.objects.get(code="OldOne1")
    new = await ReferralCode.objects.get(code="NewOne1")
    assert old.closed_at is not None
    assert new.closed_at is None


async def _sign_ups(core, owner, count: int) -> list[str]:
    """`count` chat sign-ups with the owner's code, a second apart; their names, oldest first."""
    code = await core.referrals.create_code(
        owner=owner, expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    names = []
    for index in range(count):
        with clock.shift(dt.timedelta(seconds=index)):
            await core.accounts.sign_up_telegram(
                telegram_id=5000 + index,
                full_name=f"r{index}",
                username=None,
                language_code=None,
                referral_code=code.code,
            )
        names.append(f"r{index}")
    return names


async def test_referrals_page(core, owner):
    await _sign_ups(core, owner, 3)
    await User.objects.create(email="loner@example.com")
    page = await core.referrals.referrals(referrer_id=owner.id, limit=2, offset=0)
    assert page.total == 3
    assert [user.full_name for user in page.items] == ["r2", "r1"]
    rest = await core.referrals.referrals(referrer_id=owner.id, limit=2, offset=2)
    assert [user.full_name for user in rest.items] == ["r0"]
    assert (await User.objects.get(id=owner.id)).referral_count == 3


async def test_referrals_by_cursor_walk_every_row_once(core, owner):
    names = await _sign_ups(core, owner, 7)
    seen, cursor = [], None
    while True:
        page = await core.referrals.referrals(referrer_id=owner.id, limit=3, cursor=cursor)
        assert page.total == 7
        seen += [item.full_name for item in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(names))


async def test_a_malformed_cursor_is_invalid_input(core, owner):
    for junk in ("junk", "!!!", "a" * 200, "MjAyNnwx", ""):
        if not junk:
            continue
        with pytest.raises(InvalidInput):
            await core.referrals.referrals(referrer_id=owner.id, limit=3, cursor=junk)


async def test_the_total_is_the_counter_kept_by_sign_ups(core, owner):
    await _sign_ups(core, owner, 2)
    stored = await User.objects.get(id=owner.id)
    assert stored.referral_count == 2
