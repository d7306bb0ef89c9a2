"""Referral codes: create, read and delete your own; the two public lookups."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from core.infra import clock
from core.referrals.models import ReferralCode
from core.users.models import User
from tests.api.support import (
    ahead,
    assert_problem,
    assert_utc,
    assert_validation_error,
    in_future,
    iso,
)
from tests.conftest import API, PASSWORD

BOT_LINK = "https://t.me/referral_test_bot?start="
CODE_FIELDS = {
    "code",
    "created_at",
    "expires_at",
    "max_uses",
    "uses",
    "telegram_link",
    "campaign",
}
GENERATED = re.compile(r"[A-Za-z0-9_-]{8,32}")


async def _create(client, headers, **fields):
    body = {"expires_at": ahead(days=7), **fields}
    return await client.post(f"{API}/referral-codes", json=body, headers=headers)


async def _created(client, headers, **fields) -> dict:
    response = await _create(client, headers, **fields)
    assert response.status_code == 201, response.text
    return response.json()


async def _sign_up(client, code: str, email: str):
    return await client.post(
        f"{API}/auth/register",
        json={"email": email, "password": PASSWORD, "referral_code": code},
    )


async def _lookups_fail(client, email: str, code: str) -> None:
    by_email = await client.get(f"{API}/referral-codes", params={"email": email})
    assert_problem(by_email, 404, "referral_code_not_found")
    assert_problem(await client.get(f"{API}/referral-codes/{code}"), 404, "referral_code_not_found")


async def _lookups_succeed(client, email: str, code: str) -> None:
    by_email = await client.get(f"{API}/referral-codes", params={"email": email})
    assert by_email.status_code == 200, by_email.text
    assert by_email.json()["code"] == code
    by_code = await client.get(f"{API}/referral-codes/{code}")
    assert by_code.status_code == 200, by_code.text
    assert by_code.json()["code"] == code


# -- create ----------------------------------------------------------------------------


async def test_create_a_generated_code(client, user):
    owner, headers = await user("ann@example.com")
    expires_at = in_future(days=30).replace(microsecond=0)
    response = await _create(client, headers, expires_at=iso(expires_at))
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == CODE_FIELDS
    assert GENERATED.fullmatch(body["code"]), body["code"]
    assert not body["code"].startswith("link_")
    assert body["telegram_link"] == BOT_LINK + body["code"]
    assert body["max_uses"] is None
    assert body["uses"] == 0
    assert assert_utc(body["expires_at"]) == expires_at
    assert abs(assert_utc(body["created_at"]) - clock.utcnow()) < dt.timedelta(minutes=1)

    row = await ReferralCode.objects.get(code=body["code"])
    assert row.owner.id == owner["id"]
    assert row.expires_at == expires_at
    assert row.closed_at is None
    assert row.uses == 0
    assert row.max_uses is None


async def test_generated_codes_differ(client, user):
    codes = set()
    for index in range(3):
        _, headers = await user(f"user{index}@example.com")
        codes.add((await _created(client, headers))["code"])
    assert len(codes) == 3


async def test_create_a_custom_code(client, user):
    _, headers = await user("ann@example.com")
    body = await _created(client, headers, code="Ann-2026_x", max_uses=10)
    assert body["code"] == "Ann-2026_x"
    assert body["max_uses"] == 10
    assert body["telegram_link"] == BOT_LINK + "Ann-2026_x"
    row = await ReferralCode.objects.get(code="Ann-2026_x")
    assert row.max_uses == 10


async def test_code_length_and_alphabet_bounds(client, user):
    _, headers = await user("ann@example.com")
    for code in ("abcd", "A" * 32, "a-b_", "0000", "____"):
        assert (await _created(client, headers, code=code))["code"] == code
        assert (await client.delete(f"{API}/referral-codes/me", headers=headers)).status_code == 204


async def test_expiry_in_another_offset_is_answered_in_utc(client, user):
    _, headers = await user("ann@example.com")
    moment = in_future(days=3).replace(microsecond=0)
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    body = await _created(client, headers, expires_at=local.isoformat())
    assert assert_utc(body["expires_at"]) == moment
    me = (await client.get(f"{API}/referral-codes/me", headers=headers)).json()
    assert assert_utc(me["expires_at"]) == moment


async def test_at_most_365_days_ahead(client, user):
    _, headers = await user("ann@example.com")
    body = await _created(client, headers, expires_at=ahead(days=364, hours=23))
    assert_utc(body["expires_at"])


async def test_one_active_code_at_a_time(client, user):
    _, headers = await user("ann@example.com")
    first = await _created(client, headers)
    assert_problem(await _create(client, headers), 409, "active_code_exists")
    assert_problem(await _create(client, headers, code="FreshCode"), 409, "active_code_exists")
    rows = await ReferralCode.objects.all()
    assert [row.code for row in rows] == [first["code"]]


async def test_custom_code_of_another_user_is_taken(client, user):
    _, ann = await user("ann@example.com")
    _, bob = await user("bob@example.com")
    await _created(client, ann, code="SharedName")
    assert_problem(await _create(client, bob, code="SharedName"), 409, "code_taken")
    # Codes are case-sensitive: another spelling is another code.
    assert (await _created(client, bob, code="sharedname"))["code"] == "sharedname"


async def test_a_deleted_code_is_never_issued_again(client, user):
    _, ann = await user("ann@example.com")
    _, bob = await user("bob@example.com")
    await _created(client, ann, code="OnceOnly")
    assert (await client.delete(f"{API}/referral-codes/me", headers=ann)).status_code == 204
    assert_problem(await _create(client, ann, code="OnceOnly"), 409, "code_taken")
    assert_problem(await _create(client, bob, code="OnceOnly"), 409, "code_taken")
    assert await ReferralCode.objects.filter(code="OnceOnly").count() == 1
    # The owner may still make another code.
    assert (await _created(client, ann, code="SecondOne"))["code"] == "SecondOne"


INVALID_REQUESTS = [
    ({"expires_at": None}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # naive
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"expires_at": 12345}, "expires_at"),
    ({"expires_at": ahead(seconds=-1)}, "expires_at"),
    ({"expires_at": ahead(days=-400)}, "expires_at"),
    ({"expires_at": ahead(days=365, minutes=5)}, "expires_at"),
    ({"expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "0001-01-01T00:00:00+01:00"}, "expires_at"),
    ({"expires_at": "9999-12-31T23:59:59-01:00"}, "expires_at"),
    ({"code": "abc"}, "code"),
    ({"code": "a" * 33}, "code"),
    ({"code": "has space"}, "code"),
    ({"code": "semi;colon"}, "code"),
    ({"code": "dots.dots"}, "code"),
    ({"code": "ünïcode"}, "code"),
    ({"code": "link_mine"}, "code"),
    ({"code": "link_"}, "code"),
    ({"code": ""}, "code"),
    ({"code": 12345678}, "code"),
    ({"max_uses": 0}, "max_uses"),
    ({"max_uses": -1}, "max_uses"),
    ({"max_uses": "many"}, "max_uses"),
    ({"max_uses": 1.5}, "max_uses"),
    ({"max_uses": 2**40}, "max_uses"),
]


async def test_create_validation(client, user):
    """One user for every case: each sign-up costs an argon2 hash."""
    _, headers = await user("ann@example.com")
    for fields, field in INVALID_REQUESTS:
        body = {"expires_at": ahead(days=7), **fields}
        if body["expires_at"] is None:
            del body["expires_at"]
        response = await client.post(f"{API}/referral-codes", json=body, headers=headers)
        assert_validation_error(response, field)
    # "Now" is already past by the time the service reads it.
    response = await _create(client, headers, expires_at=iso(clock.utcnow()))
    assert_validation_error(response, "expires_at")
    assert await ReferralCode.objects.count() == 0


async def test_create_needs_a_json_body(client, user):
    _, headers = await user("ann@example.com")
    response = await client.post(f"{API}/referral-codes", headers=headers)
    assert_validation_error(response)
    response = await client.post(
        f"{API}/referral-codes",
        content=b"{nope",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_validation_error(response)


# -- the caller's code -----------------------------------------------------------------


async def test_my_code(client, user):
    _, headers = await user("ann@example.com")
    assert_problem(
        await client.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    created = await _created(client, headers, max_uses=2)
    response = await client.get(f"{API}/referral-codes/me", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body == created
    assert_utc(body["created_at"])
    assert_utc(body["expires_at"])

    assert (await _sign_up(client, created["code"], "friend@example.com")).status_code == 201
    assert (await client.get(f"{API}/referral-codes/me", headers=headers)).json()["uses"] == 1


async def test_an_exhausted_code_is_not_active(client, user):
    _, headers = await user("ann@example.com")
    created = await _created(client, headers, max_uses=1)
    await _lookups_succeed(client, "ann@example.com", created["code"])  # now cached
    assert (await _sign_up(client, created["code"], "friend@example.com")).status_code == 201

    assert_problem(
        await client.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    await _lookups_fail(client, "ann@example.com", created["code"])
    assert_problem(
        await _sign_up(client, created["code"], "late@example.com"), 400, "referral_code_exhausted"
    )
    assert_problem(
        await client.delete(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    # An exhausted code makes way for a new one.
    fresh = await _created(client, headers)
    assert fresh["code"] != created["code"]
    assert (await ReferralCode.objects.get(code=created["code"])).closed_at is not None


async def test_delete_my_code(client, user):
    _, headers = await user("ann@example.com", full_name="Ann")
    created = await _created(client, headers)
    code = created["code"]
    await _lookups_succeed(client, "ann@example.com", code)  # fill the cache first

    response = await client.delete(f"{API}/referral-codes/me", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    row = await ReferralCode.objects.get(code=code)
    assert row.closed_at is not None

    # It stops working at once, everywhere, cache included.
    await _lookups_fail(client, "ann@example.com", code)
    assert_problem(
        await client.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    assert_problem(await _sign_up(client, code, "friend@example.com"), 400, "referral_code_expired")
    assert not await User.objects.filter(email="friend@example.com").exists()
    assert_problem(
        await client.delete(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )

    fresh = await _created(client, headers)
    await _lookups_succeed(client, "ann@example.com", fresh["code"])


async def test_delete_without_a_code(client, user):
    _, headers = await user("ann@example.com")
    assert_problem(
        await client.delete(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )


async def test_own_code_endpoints_need_a_token(client):
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{API}/referral-codes/me")
        assert_problem(response, 401, "not_authenticated")
    response = await client.post(f"{API}/referral-codes", json={"expires_at": ahead(days=1)})
    assert_problem(response, 401, "not_authenticated")
    assert await ReferralCode.objects.count() == 0


# -- lookup by email -------------------------------------------------------------------


async def test_lookup_by_email(client, user):
    _, headers = await user("ann@example.com")
    created = await _created(client, headers)
    for email in ("ann@example.com", "ANN@Example.com", " ann@example.com "):
        response = await client.get(f"{API}/referral-codes", params={"email": email})
        assert response.status_code == 200, (email, response.text)
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body == {
            "code": created["code"],
            "expires_at": body["expires_at"],
            "campaign": "default",
        }
        assert assert_utc(body["expires_at"]) == assert_utc(created["expires_at"])


async def test_lookup_by_email_does_not_tell_who_exists(client, register):
    await register("nocode@example.com")
    unknown = await client.get(f"{API}/referral-codes", params={"email": "ghost@example.com"})
    no_code = await client.get(f"{API}/referral-codes", params={"email": "nocode@example.com"})
    assert assert_problem(unknown, 404, "referral_code_not_found") == assert_problem(
        no_code, 404, "referral_code_not_found"
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"email": ""}, {"email": "not-an-email"}, {"email": "a@"}, {"email": "x" * 400}],
)
async def test_lookup_by_email_validation(client, params):
    response = await client.get(f"{API}/referral-codes", params=params)
    assert_validation_error(response, "email")


async def test_lookup_by_email_never_fails_on_odd_input(client):
    for email in (
        "ünï@exämple.com",
        "a@b",
        "a+tag@example.com",
        '"quoted"@example.com',
        "%00@example.com",
        "a@example.com\n",
        "x@" + "d" * 300 + ".com",
    ):
        response = await client.get(f"{API}/referral-codes", params={"email": email})
        assert response.status_code in (404, 422), (email, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


# -- lookup by code --------------------------------------------------------------------


async def test_lookup_by_code(client, user):
    owner, headers = await user("ann@example.com", full_name="Ann Smith")
    created = await _created(client, headers, code="AnnInvites")
    for _ in range(2):  # a miss, then a cache hit: the same answer
        response = await client.get(f"{API}/referral-codes/AnnInvites")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body == {
            "code": "AnnInvites",
            "expires_at": body["expires_at"],
            "campaign": "default",
            "referrer": {"id": owner["id"], "full_name": "Ann Smith"},
        }
        assert assert_utc(body["expires_at"]) == assert_utc(created["expires_at"])


async def test_lookup_by_code_of_a_nameless_owner(client, user):
    owner, headers = await user("ann@example.com")
    await _created(client, headers, code="NoName1")
    body = (await client.get(f"{API}/referral-codes/NoName1")).json()
    assert body["referrer"] == {"id": owner["id"], "full_name": None}


async def test_lookup_by_code_is_case_sensitive(client, user):
    _, headers = await user("ann@example.com")
    await _created(client, headers, code="MixedCase")
    assert (await client.get(f"{API}/referral-codes/MixedCase")).status_code == 200
    assert_problem(
        await client.get(f"{API}/referral-codes/mixedcase"), 404, "referral_code_not_found"
    )


@pytest.mark.parametrize(
    "code",
    [
        "NoSuchCode",
        "abc",
        "a" * 33,
        "a" * 5000,
        "bad%20code",
        "%00%00%00%00",
        "ünïcode1",
        "link_abcdefgh",
        "'; DROP TABLE referral_codes; --",
        "%F0%9F%98%80%F0%9F%98%80",
    ],
)
async def test_lookup_of_unknown_or_garbage_codes(client, code):
    response = await client.get(f"{API}/referral-codes/{code}")
    assert_problem(response, 404, "referral_code_not_found")


async def test_lookup_of_an_expired_code(client, user):
    _, headers = await user("ann@example.com")
    await _created(client, headers, code="Brief1", expires_at=ahead(minutes=10))
    await _lookups_succeed(client, "ann@example.com", "Brief1")
    with clock.shift(dt.timedelta(minutes=11)):
        await _lookups_fail(client, "ann@example.com", "Brief1")


async def test_codes_are_case_sensitive_and_emails_are_not_on_every_database(
    client, register, login
) -> None:
    """MariaDB's default collations ignore case: the schema's own (utf8mb4_bin) does not, so
    codes differ by case as on PostgreSQL and SQLite, while an email is one whatever its case;
    4-byte UTF-8 (an emoji) is kept as given."""
    await register("ann@example.com", full_name="Zoë 🚀 Ada")
    await register("bob@example.com")
    ann, bob = await login("ann@example.com"), await login("bob@example.com")
    await _created(client, ann, code="SameCode")
    await _created(client, bob, code="samecode")  # another value, not a taken one

    found = await client.get(f"{API}/referral-codes/SameCode")
    assert found.json()["referrer"]["full_name"] == "Zoë 🚀 Ada"
    assert (await client.get(f"{API}/referral-codes/samecode")).json()["referrer"][
        "full_name"
    ] is None
    assert (await client.get(f"{API}/referral-codes/SAMECODE")).status_code == 404
    signed = await _sign_up(client, "SAMECODE", "carol@example.com")
    assert_problem(signed, 400, "referral_code_invalid")

    taken = await client.post(
        f"{API}/auth/register", json={"email": "ANN@Example.COM", "password": PASSWORD}
    )
    assert taken.status_code == 409
    me = await client.get(f"{API}/users/me", headers=ann)
    assert me.json()["full_name"] == "Zoë 🚀 Ada"
    by_email = await client.get(f"{API}/referral-codes", params={"email": "Ann@Example.com"})
    assert by_email.json()["code"] == "SameCode"
