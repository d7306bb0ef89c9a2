"""Expiry is the real clock: a code whose time passed is inactive everywhere at once."""

from __future__ import annotations

import datetime as dt

from core.infra import clock
from core.referrals.models import ReferralCode
from core.users.models import User
from tests.api.support import ahead, assert_problem, assert_utc
from tests.conftest import API, PASSWORD

LATER = dt.timedelta(minutes=6)  # past the code's 5 minutes, within the token's 15


async def _lookup(client, *, email: str | None = None, code: str | None = None):
    if email is not None:
        return await client.get(f"{API}/referral-codes", params={"email": email})
    return await client.get(f"{API}/referral-codes/{code}")


async def test_a_code_that_expires_before_use(client, user):
    ann, headers = await user("ann@example.com", full_name="Ann")
    response = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": ahead(minutes=5), "code": "FiveMinutes"},
        headers=headers,
    )
    assert response.status_code == 201
    # Both lookups answer, and now hold the code in the cache.
    for _ in range(2):
        assert (await _lookup(client, email="ann@example.com")).status_code == 200
        assert (await _lookup(client, code="FiveMinutes")).status_code == 200

    with clock.shift(LATER):
        signup = await client.post(
            f"{API}/auth/register",
            json={
                "email": "late@example.com",
                "password": PASSWORD,
                "referral_code": "FiveMinutes",
            },
        )
        assert_problem(signup, 400, "referral_code_expired")
        assert not await User.objects.filter(email="late@example.com").exists()

        mine = await client.get(f"{API}/referral-codes/me", headers=headers)
        assert_problem(mine, 404, "no_active_code")
        gone = await client.delete(f"{API}/referral-codes/me", headers=headers)
        assert_problem(gone, 404, "no_active_code")
        by_email = await _lookup(client, email="ann@example.com")
        by_code = await _lookup(client, code="FiveMinutes")
        assert_problem(by_email, 404, "referral_code_not_found")
        assert_problem(by_code, 404, "referral_code_not_found")

        # The value is spent for good, even though the code expired...
        reuse = await client.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=1), "code": "FiveMinutes"},
            headers=headers,
        )
        assert_problem(reuse, 409, "code_taken")
        # ...but its owner may make a new code straight away.
        fresh = await client.post(
            f"{API}/referral-codes", json={"expires_at": ahead(days=1)}, headers=headers
        )
        assert fresh.status_code == 201, fresh.text
        new_code = fresh.json()["code"]
        assert new_code != "FiveMinutes"
        assert assert_utc(fresh.json()["expires_at"]) > clock.utcnow()

        mine = await client.get(f"{API}/referral-codes/me", headers=headers)
        assert mine.status_code == 200
        assert mine.json()["code"] == new_code
        assert (await _lookup(client, email="ann@example.com")).json()["code"] == new_code
        assert (await _lookup(client, code=new_code)).status_code == 200
        assert_problem(await _lookup(client, code="FiveMinutes"), 404, "referral_code_not_found")

        joined = await client.post(
            f"{API}/auth/register",
            json={"email": "friend@example.com", "password": PASSWORD, "referral_code": new_code},
        )
        assert joined.status_code == 201
        assert joined.json()["referrer_id"] == ann["id"]

    old = await ReferralCode.objects.get(code="FiveMinutes")
    assert old.closed_at is not None
    assert old.uses == 0
    assert await ReferralCode.objects.filter(owner=ann["id"], closed_at=None).count() == 1


async def test_a_code_is_usable_until_its_last_moment(client, user):
    _, headers = await user("ann@example.com")
    response = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": ahead(minutes=5), "code": "StillGood"},
        headers=headers,
    )
    assert response.status_code == 201
    with clock.shift(dt.timedelta(minutes=4)):
        assert (await _lookup(client, code="StillGood")).status_code == 200
        signup = await client.post(
            f"{API}/auth/register",
            json={
                "email": "friend@example.com",
                "password": PASSWORD,
                "referral_code": "StillGood",
            },
        )
        assert signup.status_code == 201, signup.text
