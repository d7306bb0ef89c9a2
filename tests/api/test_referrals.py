"""Who joined with a user's codes: the referrer themself or a superuser may look."""

from __future__ import annotations

import datetime as dt

import pytest

from core.infra import clock
from core.users.models import User
from tests.api.support import ahead, assert_problem, assert_utc, assert_validation_error
from tests.conftest import API, PASSWORD

ITEM_FIELDS = {"id", "email", "full_name", "created_at", "referral_code"}


async def _code(client, headers, **fields) -> str:
    response = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=30), **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()["code"]


async def _join(client, code: str, email: str, name: str | None = None) -> dict:
    body = {"email": email, "password": PASSWORD, "referral_code": code}
    if name:
        body["full_name"] = name
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _referrals(client, user_id: int, headers, **params):
    return await client.get(f"{API}/users/{user_id}/referrals", params=params, headers=headers)


@pytest.fixture
async def referrer(client, user):
    """Ann, with three referrals over two codes (the first deleted), joined a minute apart."""
    ann, headers = await user("ann@example.com", full_name="Ann")
    first = await _code(client, headers, code="AnnFirst")
    joined = [await _join(client, first, "one@example.com", "One")]
    assert (await client.delete(f"{API}/referral-codes/me", headers=headers)).status_code == 204
    second = await _code(client, headers, code="AnnSecond")
    with clock.shift(dt.timedelta(minutes=1)):
        joined.append(await _join(client, second, "two@example.com"))
    with clock.shift(dt.timedelta(minutes=2)):
        joined.append(await _join(client, second, "three@example.com", "Three"))
    return ann, headers, joined


async def test_referrals_newest_first(client, referrer, register):
    ann, headers, joined = referrer
    await register("stranger@example.com")  # no referrer: not listed
    response = await _referrals(client, ann["id"], headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 3
    assert body["limit"] == 50
    assert body["offset"] == 0
    items = body["items"]
    assert [item["id"] for item in items] == [user["id"] for user in reversed(joined)]
    for item in items:
        assert set(item) >= ITEM_FIELDS
        assert not any("password" in key for key in item)
        assert_utc(item["created_at"])
    assert [(i["email"], i["full_name"], i["referral_code"]) for i in items] == [
        ("three@example.com", "Three", "AnnSecond"),
        ("two@example.com", None, "AnnSecond"),
        ("one@example.com", "One", "AnnFirst"),
    ]


async def test_referrals_pagination(client, referrer):
    ann, headers, joined = referrer
    newest_first = [user["id"] for user in reversed(joined)]
    pages = []
    for offset in (0, 2, 4):
        response = await _referrals(client, ann["id"], headers, limit=2, offset=offset)
        assert response.status_code == 200
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (3, 2, offset)
        pages.append([item["id"] for item in body["items"]])
    assert pages == [newest_first[:2], newest_first[2:], []]

    response = await _referrals(client, ann["id"], headers, limit=100, offset=10**12)
    assert response.status_code == 200
    assert response.json()["items"] == []
    response = await _referrals(client, ann["id"], headers, limit=1)
    assert [item["id"] for item in response.json()["items"]] == newest_first[:1]


async def test_no_referrals_yet(client, user):
    ann, headers = await user("ann@example.com")
    response = await _referrals(client, ann["id"], headers)
    assert response.status_code == 200
    assert response.json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
    }


async def test_pagination_validation(client, user):
    ann, headers = await user("ann@example.com")
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
    ):
        assert_validation_error(await _referrals(client, ann["id"], headers, **params), field)


async def test_other_users_referrals_are_forbidden(client, referrer, user):
    ann, _, _ = referrer
    _, bob_headers = await user("bob@example.com")
    for user_id in (ann["id"], ann["id"] + 1000, 0, -1, 2**31, 2**63, 10**30):
        response = await _referrals(client, user_id, bob_headers)
        assert_problem(response, 403, "forbidden")


async def test_a_superuser_sees_anyones_referrals(client, referrer, user):
    ann, _, joined = referrer
    admin, admin_headers = await user("admin@example.com")
    await User.objects.filter(id=admin["id"]).update(is_superuser=True)

    response = await _referrals(client, ann["id"], admin_headers, limit=2)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert [item["id"] for item in body["items"]] == [joined[2]["id"], joined[1]["id"]]

    for user_id in (ann["id"] + 1000, 0, -1, 2**31, 2**63, 10**30):
        response = await _referrals(client, user_id, admin_headers)
        assert_problem(response, 404, "user_not_found")


async def test_an_api_key_reads_anyones_referrals(client, referrer, user):
    ann, _, joined = referrer
    admin, admin_headers = await user("admin@example.com")
    await User.objects.filter(id=admin["id"]).update(is_superuser=True)
    created = await client.post(f"{API}/api-keys", json={"name": "crm"}, headers=admin_headers)
    key = {"X-API-Key": created.json()["key"]}

    response = await _referrals(client, ann["id"], key)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [j["id"] for j in joined[::-1]]
    assert_problem(await _referrals(client, ann["id"] + 1000, key), 404, "user_not_found")
    assert_problem(
        await _referrals(client, ann["id"], {"X-API-Key": "rk_x"}), 401, "not_authenticated"
    )


async def test_a_user_without_referrals_seen_by_a_superuser(client, user):
    admin, admin_headers = await user("admin@example.com")
    await User.objects.filter(id=admin["id"]).update(is_superuser=True)
    bob, _ = await user("bob@example.com")
    response = await _referrals(client, bob["id"], admin_headers)
    assert response.status_code == 200
    assert response.json()["total"] == 0


async def test_referrals_need_a_token(client, referrer):
    ann, _, _ = referrer
    assert_problem(await _referrals(client, ann["id"], {}), 401, "not_authenticated")


async def test_non_numeric_user_id(client, user):
    _, headers = await user("ann@example.com")
    for user_id in ("abc", "1.5", "1e3", "%00", "me"):
        response = await client.get(f"{API}/users/{user_id}/referrals", headers=headers)
        assert_validation_error(response, "user_id")


async def test_referrals_by_cursor(client, referrer):
    ann, headers, joined = referrer
    first = (await _referrals(client, ann["id"], headers, limit=2)).json()
    assert first["total"] == 3
    assert first["next_cursor"]
    second = await _referrals(client, ann["id"], headers, limit=2, cursor=first["next_cursor"])
    body = second.json()
    assert body["total"] == 3
    assert body["next_cursor"] is None
    ids = [item["id"] for item in first["items"] + body["items"]]
    assert ids == [person["id"] for person in reversed(joined)]


@pytest.mark.parametrize("cursor", ["junk", "%%%", "x" * 101, "MjAyNi0xMi0wMXwx="])
async def test_a_malformed_cursor_is_422(client, referrer, cursor):
    ann, headers, _ = referrer
    response = await _referrals(client, ann["id"], headers, cursor=cursor)
    assert_validation_error(response, "cursor")
