"""Blocked users: tokens end at once, sign-in is refused, their code works nowhere."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.support import assert_problem
from tests.conftest import API, PASSWORD


async def test_a_block_ends_everything_at_once_and_an_unblock_restores_it(
    client: httpx.AsyncClient, operator, referrer
) -> None:
    ref = await referrer(full_name="Ref")
    code = ref["code"]
    token = await client.post(
        f"{API}/auth/token", data={"username": "ref@example.com", "password": PASSWORD}
    )
    refresh = token.json()["refresh_token"]
    assert (await client.get(f"{API}/referral-codes/{code}")).status_code == 200  # cached now

    blocked = await client.post(f"{API}/admin/users/{ref['user']['id']}/block", headers=operator)
    assert blocked.status_code == 200
    assert blocked.json()["blocked"] is True

    assert_problem(
        await client.get(f"{API}/users/me", headers=ref["headers"]), 401, "not_authenticated"
    )
    login = await client.post(
        f"{API}/auth/token", data={"username": "ref@example.com", "password": PASSWORD}
    )
    assert_problem(login, 403, "account_blocked")
    wrong = await client.post(
        f"{API}/auth/token", data={"username": "ref@example.com", "password": "not it at all"}
    )
    assert_problem(wrong, 401, "invalid_credentials")  # the block is told only to the owner
    assert_problem(
        await client.post(f"{API}/auth/refresh", json={"refresh_token": refresh}),
        403,
        "account_blocked",
    )
    assert_problem(await client.get(f"{API}/referral-codes/{code}"), 404, "referral_code_not_found")
    assert_problem(
        await client.get(f"{API}/referral-codes", params={"email": "ref@example.com"}),
        404,
        "referral_code_not_found",
    )
    signup = await client.post(
        f"{API}/auth/register",
        json={"email": "late@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert_problem(signup, 400, "referral_code_expired")

    unblocked = await client.post(
        f"{API}/admin/users/{ref['user']['id']}/unblock", headers=operator
    )
    assert unblocked.json()["blocked"] is False
    # Both 404s above are remembered by the cache; the unblock drops them.
    assert (await client.get(f"{API}/referral-codes/{code}")).status_code == 200
    by_email = await client.get(f"{API}/referral-codes", params={"email": "ref@example.com"})
    assert by_email.json()["code"] == code
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": refresh})
    ).status_code == 200
    joined = await client.post(
        f"{API}/auth/register",
        json={"email": "late@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert joined.status_code == 201
    audit = (await client.get(f"{API}/admin/audit", headers=operator)).json()["items"]
    assert [entry["action"] for entry in audit[:2]] == ["user.unblocked", "user.blocked"]


async def test_blocking_unknown_users(client: httpx.AsyncClient, operator) -> None:
    for user_id in (999999, 2**40):
        assert_problem(
            await client.post(f"{API}/admin/users/{user_id}/block", headers=operator),
            404,
            "user_not_found",
        )


async def test_a_block_during_sign_ups_with_the_blocked_users_code(
    client: httpx.AsyncClient, core, operator, referrer
) -> None:
    """Each sign-up is before the block or refused: none counts after it."""
    ref = await referrer()

    async def sign_up(n: int) -> httpx.Response:
        return await client.post(
            f"{API}/auth/register",
            json={"email": f"p{n}@example.com", "password": PASSWORD, "referral_code": ref["code"]},
        )

    block = client.post(f"{API}/admin/users/{ref['user']['id']}/block", headers=operator)
    answers = await asyncio.gather(*(sign_up(n) for n in range(10)), block)
    *signups, blocked = answers
    assert blocked.status_code == 200
    joined = [r for r in signups if r.status_code == 201]
    refused = [r for r in signups if r.status_code != 201]
    assert all(r.json()["code"] == "referral_code_expired" for r in refused)
    # What the counters say is what committed.
    stats = await core.stats.referrer_stats(user_id=ref["user"]["id"])
    assert stats["referrals"] == stats["approved"] == len(joined)
    after = await sign_up(99)
    assert after.json()["code"] == "referral_code_expired"


async def test_operators_cannot_be_blocked_not_even_by_themselves(
    client: httpx.AsyncClient, operator, api_key
) -> None:
    me = (await client.get(f"{API}/users/me", headers=operator)).json()
    for headers in (operator, api_key):
        assert_problem(
            await client.post(f"{API}/admin/users/{me['id']}/block", headers=headers),
            409,
            "cannot_block_operator",
        )
    assert (await client.get(f"{API}/users/me", headers=operator)).status_code == 200
    assert_problem(
        await client.post(f"{API}/admin/users/999999/block", headers=operator),
        404,
        "user_not_found",
    )


async def test_a_blocked_referrer_earns_nothing_and_unblocking_grants_nothing_later(
    client: httpx.AsyncClient, api_key, operator, referrer, join
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])
    await client.post(f"{API}/admin/users/{ref['user']['id']}/block", headers=operator)

    converted = await client.post(
        f"{API}/conversions",
        json={"user_id": friend["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    assert converted.status_code == 201
    # The referral qualified; only the friend, who is not blocked, is rewarded.
    assert converted.json()["referral_qualified"] is True
    assert [(r["user_id"], r["points"]) for r in converted.json()["rewards"]] == [
        (friend["id"], 50)
    ]

    await client.post(f"{API}/admin/users/{ref['user']['id']}/unblock", headers=operator)
    signed_in = await client.post(
        f"{API}/auth/token", data={"username": "ref@example.com", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    rewards = (await client.get(f"{API}/users/me/rewards", headers=headers)).json()
    assert (rewards["balance"], rewards["items"]) == (0, [])
    overview = (await client.get(f"{API}/admin/stats", headers=operator)).json()
    assert overview["totals"]["rewards_points"] == 50


async def test_an_erased_referrer_earns_nothing_and_leaves_the_leaderboard(
    client: httpx.AsyncClient, api_key, referrer, join
) -> None:
    ref = await referrer(full_name="Gone Soon")
    other = await referrer("other@example.com", full_name="Stays")
    friend = await join("friend@example.com", ref["code"])
    await join("pal@example.com", other["code"])
    erased = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=ref["headers"]
    )
    assert erased.status_code == 204

    converted = await client.post(
        f"{API}/conversions",
        json={"user_id": friend["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    assert [r["user_id"] for r in converted.json()["rewards"]] == [friend["id"]]
    board = (await client.get(f"{API}/leaderboard")).json()["items"]
    assert [item["referrer"]["id"] for item in board] == [other["user"]["id"]]
