"""Stats, the leaderboard and the program overview, from counters kept by each change."""

from __future__ import annotations

import datetime as dt

import httpx

from core.infra import clock
from core.users.models import User
from core.webhooks.models import WebhookDelivery
from tests.api.support import assert_problem, assert_validation_error
from tests.conftest import API


async def test_a_referrers_stats_and_their_last_30_days(
    client: httpx.AsyncClient, core, api_key, referrer, join
) -> None:
    ref = await referrer()
    with clock.shift(dt.timedelta(days=-3)):
        await join("early@example.com", ref["code"])
    friend = await join("friend@example.com", ref["code"])
    await join("held@mailinator.com", ref["code"])
    await client.post(
        f"{API}/conversions",
        json={"user_id": friend["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    for visitor in ("203.0.113.1", "telegram:42", "203.0.113.1"):  # a repeat counts once
        await core.link_opens.record(
            ref["user"]["id"], campaign="default", visitor=visitor, code=ref["code"]
        )
    await core.link_opens.flush()

    response = await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])

    assert response.status_code == 200
    stats = response.json()
    days = stats.pop("last_30_days")
    assert stats == {
        "referrals": 3,
        "approved": 2,
        "pending_review": 1,
        "rejected": 0,
        "qualified": 1,
        "rewards_balance": 100,
        "rewards_pending": 0,
        "link_opens": 2,
    }
    assert len(days) == 30
    today = clock.utcnow().date()
    assert days[-1] == {"date": today.isoformat(), "referrals": 2}
    assert days[-4] == {"date": (today - dt.timedelta(days=3)).isoformat(), "referrals": 1}
    assert sum(day["referrals"] for day in days) == 3
    assert_problem(await client.get(f"{API}/users/me/referral-stats"), 401, "not_authenticated")


async def test_the_leaderboard_ranks_approved_referrals_in_the_window(
    client: httpx.AsyncClient, operator, referrer, join
) -> None:
    ann = await referrer("ann@example.com", full_name="Ann")
    bob = await referrer("bob@example.com", full_name="Bob")
    cid = await referrer("cid@example.com")
    for n in range(2):
        await join(f"a{n}@example.com", ann["code"])
        await join(f"b{n}@example.com", bob["code"])
    await join("c0@example.com", cid["code"])
    await join("held@mailinator.com", cid["code"])  # held: not counted
    with clock.shift(dt.timedelta(days=-10)):
        await join("old@example.com", cid["code"])

    board = (await client.get(f"{API}/leaderboard", params={"days": 7})).json()
    assert board["days"] == 7
    assert [(i["rank"], i["referrer"]["full_name"], i["referrals"]) for i in board["items"]] == [
        (1, "Ann", 2),
        (1, "Bob", 2),
        (3, None, 1),
    ]
    assert "email" not in str(board)
    assert "@" not in str(board)
    # Over 30 days Cid's older referral counts too: three share the first rank.
    wide = (await client.get(f"{API}/leaderboard", params={"days": 30})).json()
    assert [(i["rank"], i["referrals"]) for i in wide["items"]] == [(1, 2)] * 3
    top = (await client.get(f"{API}/leaderboard", params={"limit": 1})).json()
    assert len(top["items"]) == 1
    await client.post(f"{API}/admin/users/{cid['user']['id']}/block", headers=operator)
    assert cid["user"]["id"] not in [
        i["referrer"]["id"] for i in (await client.get(f"{API}/leaderboard")).json()["items"]
    ]
    for params in ({"days": 0}, {"days": 366}, {"limit": 0}, {"limit": 101}):
        assert_validation_error(await client.get(f"{API}/leaderboard", params=params))


async def test_the_program_overview(
    client: httpx.AsyncClient, operator, api_key, referrer, join, register
) -> None:
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])
    await join("held@mailinator.com", ref["code"])
    await register("alone@example.com")
    await client.post(
        f"{API}/conversions",
        json={"user_id": friend["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )

    overview = (await client.get(f"{API}/admin/stats", params={"days": 7}, headers=operator)).json()
    assert len(overview["days"]) == 7
    assert overview["days"][-1] == {
        "date": clock.utcnow().date().isoformat(),
        "signups": 5,  # the referrer, two referrals, one alone, and the operator
        "referred": 2,
        "qualified": 1,
    }
    assert overview["totals"] == {
        "users": 5,
        "referred": 2,
        "pending_review": 1,
        "qualified": 1,
        "rewards_points": 150,
    }
    default = (await client.get(f"{API}/admin/stats", headers=api_key)).json()
    assert len(default["days"]) == 30
    assert_validation_error(
        await client.get(f"{API}/admin/stats", params={"days": 400}, headers=operator)
    )


async def test_erasure_keeps_the_referrers_counts(
    client: httpx.AsyncClient, referrer, join
) -> None:
    ref = await referrer()
    await join("friend@example.com", ref["code"])
    friend_headers = {
        "Authorization": "Bearer "
        + (
            await client.post(
                f"{API}/auth/token",
                data={"username": "friend@example.com", "password": "correct horse battery"},
            )
        ).json()["access_token"]
    }
    erased = await client.request(
        "DELETE",
        f"{API}/users/me",
        json={"password": "correct horse battery"},
        headers=friend_headers,
    )
    assert erased.status_code == 204
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert (stats["referrals"], stats["approved"]) == (1, 1)
    board = (await client.get(f"{API}/leaderboard")).json()["items"]
    assert board[0]["referrals"] == 1


async def test_the_programs_events_go_out_as_webhooks(
    client: httpx.AsyncClient, operator, api_key, referrer, join
) -> None:
    await client.post(
        f"{API}/webhooks",
        json={"url": "https://example.com/hook", "events": ["*"]},
        headers=operator,
    )
    ref = await referrer()
    held = await join("held@mailinator.com", ref["code"])
    await client.post(
        f"{API}/conversions",
        json={"user_id": held["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    await client.post(f"{API}/admin/referrals/{held['id']}/approve", headers=operator)

    deliveries = await WebhookDelivery.objects.order_by("id").all()
    types = [d.event_type for d in deliveries]
    assert types[-5:] == [
        "referral.created",
        "referral.qualified",
        "reward.granted",
        "reward.granted",
        "referral.reviewed",
    ]
    created = next(d for d in deliveries if d.event_type == "referral.created")
    assert created.payload["data"]["status"] == "pending_review"
    assert created.payload["data"]["review_reasons"] == ["disposable_email"]
    reviewed = deliveries[-1].payload["data"]
    assert (reviewed["id"], reviewed["status"]) == (held["id"], "approved")
    rewards = [d.payload["data"] for d in deliveries if d.event_type == "reward.granted"]
    assert {(r["user_id"], r["points"]) for r in rewards} == {
        (ref["user"]["id"], 100),
        (held["id"], 50),
    }
    assert await User.objects.count() == 3
