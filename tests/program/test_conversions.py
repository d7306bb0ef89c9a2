"""Conversions and rewards: idempotent by external_id, the first qualifies, rewards once."""

from __future__ import annotations

import asyncio

import httpx

from core.infra.settings import Settings
from core.program.tables import rewards
from tests.api.support import assert_problem, assert_validation_error
from tests.conftest import API


async def _convert(client: httpx.AsyncClient, key: dict[str, str], **body) -> httpx.Response:
    payload = {"event": "purchase", "external_id": "order-1", **body}
    return await client.post(f"{API}/conversions", json=payload, headers=key)


async def test_the_first_conversion_qualifies_the_referral_and_rewards_both(
    client: httpx.AsyncClient, api_key, referrer, join, settings: Settings
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])

    response = await _convert(client, api_key, user_id=friend["id"], amount=49.9, currency="eur")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "user_id",
        "event",
        "external_id",
        "amount",
        "currency",
        "created_at",
        "referral_qualified",
        "capped",
        "refunded_at",
        "rewards",
    }
    assert (body["user_id"], body["amount"], body["currency"]) == (friend["id"], 49.9, "EUR")
    assert body["referral_qualified"] is True
    points = {(r["user_id"], r["reason"], r["points"], r["referral_id"]) for r in body["rewards"]}
    assert points == {
        (ref["user"]["id"], "referral_qualified", 100, friend["id"]),
        (friend["id"], "referred_signup_bonus", 50, friend["id"]),
    }
    mine = (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()
    assert mine["balance"] == 100
    assert [item["reason"] for item in mine["items"]] == ["referral_qualified"]

    # A second conversion of the same user qualifies nothing more.
    again = await _convert(client, api_key, user_id=friend["id"], external_id="order-2")
    assert again.status_code == 201
    assert (again.json()["referral_qualified"], again.json()["rewards"]) == (False, [])
    assert (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()[
        "balance"
    ] == 100


async def test_the_same_external_id_is_stored_once_even_twenty_at_once(
    client: httpx.AsyncClient, core, api_key, referrer, join
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])

    answers = await asyncio.gather(
        *(_convert(client, api_key, email="friend@example.com") for _ in range(20))
    )

    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * 19 + [201]
    bodies = {response.text for response in answers}
    assert len(bodies) == 1  # every answer is the first one's body
    from core.infra import db

    async with db.database.connection() as connection:
        granted = (await connection.execute(rewards.select())).all()
    assert len(granted) == 2
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert stats["qualified"] == 1
    assert friend["id"] == answers[0].json()["user_id"]


async def test_of_several_conversions_at_once_exactly_one_qualifies(
    client: httpx.AsyncClient, api_key, referrer, join
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])

    answers = await asyncio.gather(
        *(_convert(client, api_key, user_id=friend["id"], external_id=f"o-{n}") for n in range(8))
    )

    assert [response.status_code for response in answers] == [201] * 8
    qualifying = [response.json() for response in answers if response.json()["referral_qualified"]]
    assert len(qualifying) == 1
    assert len(qualifying[0]["rewards"]) == 2
    assert all(
        response.json()["rewards"] == [] for response in answers if response.json() != qualifying[0]
    )
    mine = (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()
    assert mine["balance"] == 100
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert stats["qualified"] == 1


async def test_a_user_without_a_referrer_converts_without_rewards(
    client: httpx.AsyncClient, api_key, register
) -> None:
    alone = await register("alone@example.com")
    response = await _convert(client, api_key, user_id=alone["id"])
    assert response.status_code == 201
    assert (response.json()["referral_qualified"], response.json()["rewards"]) == (False, [])


async def test_conversions_of_unknown_users_and_bad_bodies(
    client: httpx.AsyncClient, api_key, operator
) -> None:
    assert_problem(await _convert(client, api_key, user_id=999999), 404, "user_not_found")
    assert_problem(
        await _convert(client, api_key, email="nobody@example.com"), 404, "user_not_found"
    )
    assert_problem(await _convert(client, operator, user_id=2**40), 404, "user_not_found")
    for body in (
        {},
        {"user_id": 1, "email": "a@example.com"},
        {"user_id": 1, "event": "Has Spaces"},
        {"user_id": 1, "event": "x" * 65},
        {"user_id": 1, "external_id": ""},
        {"user_id": 1, "external_id": "x" * 129},
        {"user_id": 1, "amount": -1},
        {"user_id": 1, "currency": "EURO"},
        {"user_id": "1"},
    ):
        assert_validation_error(await _convert(client, api_key, **body))


async def test_conversions_need_an_operator(client: httpx.AsyncClient, user) -> None:
    assert_problem(await _convert(client, {}, user_id=1), 401, "not_authenticated")
    _, headers = await user("ann@example.com")
    assert_problem(await _convert(client, headers, user_id=1), 403, "forbidden")


async def test_points_come_from_settings_and_zero_turns_a_side_off(
    client: httpx.AsyncClient, core, api_key, referrer, join
) -> None:
    original = core.campaigns.settings
    core.campaigns.settings = original.model_copy(
        update={"reward_referrer_points": 7, "reward_friend_points": 0}
    )
    try:
        ref = await referrer()
        friend = await join("friend@example.com", ref["code"])
        response = await _convert(client, api_key, user_id=friend["id"])
    finally:
        core.campaigns.settings = original
    assert [(r["reason"], r["points"]) for r in response.json()["rewards"]] == [
        ("referral_qualified", 7)
    ]


async def test_adjustments_never_take_a_balance_below_zero(
    client: httpx.AsyncClient, api_key, operator, referrer, join
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])
    await _convert(client, api_key, user_id=friend["id"])
    url = f"{API}/admin/users/{ref['user']['id']}/rewards"

    spent = await client.post(url, json={"points": -60, "note": "a mug"}, headers=api_key)
    assert spent.status_code == 201
    assert (spent.json()["reason"], spent.json()["points"], spent.json()["note"]) == (
        "adjustment",
        -60,
        "a mug",
    )
    too_much = await client.post(url, json={"points": -41, "note": "a hat"}, headers=api_key)
    assert_problem(too_much, 409, "insufficient_balance")
    refund = await client.post(url, json={"points": 1, "note": "refund"}, headers=operator)
    assert refund.status_code == 201
    page = (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()
    assert page["balance"] == 41
    assert [item["points"] for item in page["items"]] == [1, -60, 100]
    for body in ({"points": 0, "note": "x"}, {"points": 5, "note": ""}, {"points": 5}):
        assert_validation_error(await client.post(url, json=body, headers=api_key))
    assert_problem(
        await client.post(
            f"{API}/admin/users/999999/rewards", json={"points": 5, "note": "x"}, headers=api_key
        ),
        404,
        "user_not_found",
    )
    audit = (await client.get(f"{API}/admin/audit", headers=operator)).json()["items"]
    assert [entry["action"] for entry in audit[:2]] == ["reward.adjusted", "reward.adjusted"]


async def test_rewards_are_paged_newest_first(client: httpx.AsyncClient, api_key, referrer) -> None:
    ref = await referrer()
    url = f"{API}/admin/users/{ref['user']['id']}/rewards"
    for n in range(3):
        await client.post(url, json={"points": n + 1, "note": f"n{n}"}, headers=api_key)
    first = (
        await client.get(f"{API}/users/me/rewards", params={"limit": 2}, headers=ref["headers"])
    ).json()
    assert [item["points"] for item in first["items"]] == [3, 2]
    rest = (
        await client.get(
            f"{API}/users/me/rewards",
            params={"cursor": first["next_cursor"]},
            headers=ref["headers"],
        )
    ).json()
    assert [item["points"] for item in rest["items"]] == [1]
    assert rest["next_cursor"] is None
    assert_validation_error(
        await client.get(
            f"{API}/users/me/rewards", params={"cursor": "zz"}, headers=ref["headers"]
        ),
        "cursor",
    )
    assert_problem(await client.get(f"{API}/users/me/rewards"), 401, "not_authenticated")


async def test_a_reused_external_id_with_another_body_is_a_conflict(
    client: httpx.AsyncClient, api_key, referrer, join, register
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])
    other = await register("other@example.com")
    first = await _convert(client, api_key, user_id=friend["id"], amount=10, currency="EUR")
    assert first.status_code == 201

    # The same conversion again, however it is spelled: the first one's answer.
    for same in (
        {"user_id": friend["id"], "amount": 10.0, "currency": "eur"},
        {"email": "Friend@Example.com", "amount": 10, "currency": "EUR"},
    ):
        again = await _convert(client, api_key, **same)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()

    for changed in (
        {"user_id": other["id"], "amount": 10, "currency": "EUR"},
        {"user_id": friend["id"], "event": "refund", "amount": 10, "currency": "EUR"},
        {"user_id": friend["id"], "amount": 10.5, "currency": "EUR"},
        {"user_id": friend["id"], "currency": "EUR"},
        {"user_id": friend["id"], "amount": 10, "currency": "USD"},
        {"user_id": friend["id"], "amount": 10},
    ):
        assert_problem(await _convert(client, api_key, **changed), 409, "external_id_conflict")
    mine = (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()
    assert mine["balance"] == 100  # nothing happened twice


async def test_amounts_are_json_numbers_stored_exactly(
    client: httpx.AsyncClient, api_key, register
) -> None:
    alone = await register("alone@example.com")
    for n, (amount, stored) in enumerate(
        ((0.0001, 0.0001), (49.9, 49.9), (99_999_999_999.9999, 99_999_999_999.9999), (7, 7))
    ):
        response = await _convert(
            client, api_key, user_id=alone["id"], external_id=f"o{n}", amount=amount
        )
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == stored
    from core.infra import db
    from core.program.tables import conversions

    async with db.database.connection() as connection:
        rows = (await connection.execute(conversions.select().order_by(conversions.c.id))).all()
    assert [str(float(row.amount)) for row in rows] == [
        "0.0001",
        "49.9",
        "99999999999.9999",
        "7.0",
    ]

    # No coercion, and nothing that cannot be stored as given.
    for amount in (True, "10", 1e-10, 0.00005, 1e11, 1e300, -0.5):
        assert_validation_error(
            await _convert(client, api_key, user_id=alone["id"], external_id="x", amount=amount),
            "amount",
        )


async def test_points_at_their_bounds_never_overflow_a_balance(
    client: httpx.AsyncClient, api_key, referrer
) -> None:
    """Balances and the program's total are 64-bit: three adjustments of +10^9 (over 2^31
    together) are fine on every database, and one grant is at most 10^9 either way."""
    ref = await referrer()
    url = f"{API}/admin/users/{ref['user']['id']}/rewards"
    for _ in range(3):
        response = await client.post(url, json={"points": 10**9, "note": "big"}, headers=api_key)
        assert response.status_code == 201, response.text
    page = (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()
    assert page["balance"] == 3 * 10**9
    overview = (await client.get(f"{API}/admin/stats", headers=api_key)).json()
    assert overview["totals"]["rewards_points"] == 3 * 10**9
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert stats["rewards_balance"] == 3 * 10**9
    spent = await client.post(url, json={"points": -(10**9), "note": "out"}, headers=api_key)
    assert spent.status_code == 201
    for points in (10**9 + 1, -(10**9) - 1, 2**63):
        assert_validation_error(
            await client.post(url, json={"points": points, "note": "x"}, headers=api_key), "points"
        )
