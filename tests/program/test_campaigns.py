"""Contract v1.2: campaigns, their rules, the reward lifecycle, refunds and the funnel."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from core.container import Core
from core.infra import clock
from core.jobs.models import Job
from core.program.rewards import RELEASE
from core.telegram.service import TELEGRAM_MESSAGE
from core.users.models import User
from core.webhooks.models import WebhookDelivery
from tests.api.support import ahead, assert_problem, assert_validation_error
from tests.conftest import API, PASSWORD

Json = dict[str, Any]


@pytest.fixture
def campaign(client: httpx.AsyncClient, operator: dict[str, str]) -> Callable[..., Awaitable[Json]]:
    """Start a campaign (key, rules) as an operator; its body."""

    async def make(key: str = "december", *, name: str = "December", **fields: Any) -> Json:
        response = await client.post(
            f"{API}/campaigns", json={"key": key, "name": name, **fields}, headers=operator
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make


@pytest.fixture
def referrer_in(client: httpx.AsyncClient, user: Any) -> Callable[..., Awaitable[Json]]:
    """A user with a live code in a campaign: {"user", "headers", "code"}."""

    async def make(key: str, email: str = "ref@example.com") -> Json:
        body, headers = await user(email)
        created = await client.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=60), "campaign": key},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert created.json()["campaign"] == key
        return {"user": body, "headers": headers, "code": created.json()["code"]}

    return make


async def _convert(
    client: httpx.AsyncClient, key: dict[str, str], user_id: int, external_id: str, **body: Any
) -> httpx.Response:
    payload = {"user_id": user_id, "event": "purchase", "external_id": external_id, **body}
    return await client.post(f"{API}/conversions", json=payload, headers=key)


async def _refund(
    client: httpx.AsyncClient, key: dict[str, str], external_id: str
) -> httpx.Response:
    return await client.post(
        f"{API}/conversions/{external_id}/refund", json={"reason": "returned"}, headers=key
    )


async def _rewards(client: httpx.AsyncClient, headers: dict[str, str]) -> Json:
    response = await client.get(f"{API}/users/me/rewards", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        f"{API}/auth/token", data={"username": email, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# -- campaigns ---------------------------------------------------------------------------


async def test_the_default_campaign_holds_the_settings(client, operator, settings):
    response = await client.get(f"{API}/campaigns/default", headers=operator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["key"], body["status"]) == (1, "default", "active")
    program = settings.program
    assert body["rules"] == {
        "qualifying_events": ["*"],
        "min_amount": None,
        "credit_window_days": None,
        "referrer_points": program.reward_referrer_points,
        "friend_points": program.reward_friend_points,
        "referrer_percent": 0,
        "milestones": [],
        "cap": None,
        "hold_days": 0,
        "review": {
            "burst_limit": program.review_burst_limit,
            "burst_seconds": program.review_burst_seconds,
            "disposable_email": True,
            "same_network": True,
        },
        "telegram": None,
    }
    listed = (await client.get(f"{API}/campaigns", headers=operator)).json()["items"]
    assert [item["key"] for item in listed] == ["default"]


async def test_a_campaign_is_made_listed_changed_and_audited(client, operator, campaign):
    made = await campaign(
        "double-december",
        name="Double rewards in December",
        starts_at="2026-12-01T00:00:00Z",
        ends_at="2027-01-01T00:00:00Z",
        rules={"referrer_points": 200, "friend_points": 100, "hold_days": 14},
    )
    assert set(made) == {
        "id",
        "key",
        "name",
        "status",
        "starts_at",
        "ends_at",
        "rules",
        "created_at",
        "telegram_chat",  # null: the rules name no chat
    }
    assert made["telegram_chat"] is None
    assert made["status"] == "active"
    assert made["rules"]["referrer_points"] == 200
    assert made["rules"]["review"]["burst_limit"] == 20  # left out: the settings' default
    assert made["starts_at"] == "2026-12-01T00:00:00Z"

    key = "double-december"
    assert_problem(
        await client.post(f"{API}/campaigns", json={"key": key, "name": "Again"}, headers=operator),
        409,
        "campaign_key_taken",
    )
    patched = await client.patch(
        f"{API}/campaigns/{key}",
        json={"name": "Triple", "status": "paused", "rules": {"friend_points": 5}},
        headers=operator,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["status"]) == ("Triple", "paused")
    # The whole rules replaced: what the change left out is back to its default.
    assert (body["rules"]["friend_points"], body["rules"]["referrer_points"]) == (5, 100)
    assert body["rules"]["hold_days"] == 0
    assert (await client.get(f"{API}/campaigns/{key}", headers=operator)).json() == body
    cleared = await client.patch(f"{API}/campaigns/{key}", json={"ends_at": None}, headers=operator)
    assert cleared.json()["ends_at"] is None
    listed = (await client.get(f"{API}/campaigns", headers=operator)).json()["items"]
    assert [item["key"] for item in listed] == ["default", key]
    audit = (await client.get(f"{API}/admin/audit", headers=operator)).json()["items"]
    assert [entry["action"] for entry in audit][:3] == [
        "campaign.updated",
        "campaign.updated",
        "campaign.created",
    ]


async def test_campaigns_are_for_operators(client, user):
    _, headers = await user("ann@example.com")
    assert_problem(await client.get(f"{API}/campaigns"), 401, "not_authenticated")
    assert_problem(await client.get(f"{API}/campaigns", headers=headers), 403, "forbidden")
    assert_problem(
        await client.post(f"{API}/campaigns", json={"key": "x", "name": "X"}, headers=headers),
        403,
        "forbidden",
    )


async def test_unknown_campaigns_and_the_default_ones_end(client, operator, user):
    for path in ("/campaigns/nope", "/campaigns/nope/funnel", "/campaigns/NOT%20A%20KEY"):
        assert_problem(
            await client.get(f"{API}{path}", headers=operator), 404, "campaign_not_found"
        )
    assert_problem(
        await client.patch(f"{API}/campaigns/nope", json={"name": "x"}, headers=operator),
        404,
        "campaign_not_found",
    )
    for change in ({"status": "ended"}, {"ends_at": ahead(days=3)}):
        assert_problem(
            await client.patch(f"{API}/campaigns/default", json=change, headers=operator),
            409,
            "default_campaign",
        )
    # Pausing the default campaign is allowed (and undone).
    paused = await client.patch(
        f"{API}/campaigns/default", json={"status": "paused"}, headers=operator
    )
    assert paused.json()["status"] == "paused"
    _, headers = await user("ann@example.com")
    for call in (
        client.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=3), "campaign": "nope"},
            headers=headers,
        ),
        client.get(f"{API}/referral-codes/me", params={"campaign": "nope"}, headers=headers),
        client.delete(f"{API}/referral-codes/me", params={"campaign": "nope"}, headers=headers),
    ):
        assert_problem(await call, 404, "campaign_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rules": {"referrer_percent": 150}}, "rules.referrer_percent"),
        ({"rules": {"referrer_percent": -1}}, "rules.referrer_percent"),
        (
            {"rules": {"milestones": [{"qualified": 0, "points": 10}]}},
            "rules.milestones.0.qualified",
        ),
        ({"rules": {"milestones": [{"qualified": 3, "points": 0}]}}, "rules.milestones.0.points"),
        ({"rules": {"milestones": [{"qualified": 3}]}}, "rules.milestones.0"),
        ({"rules": {"qualifying_events": ["Bad Event!"]}}, "rules.qualifying_events"),
        ({"rules": {"qualifying_events": []}}, "rules.qualifying_events"),
        ({"rules": {"hold_days": 366}}, "rules.hold_days"),
        ({"rules": {"hold_days": True}}, "rules.hold_days"),
        ({"rules": {"cap": {"rewards": 5, "days": 0}}}, "rules.cap.days"),
        ({"rules": {"cap": {"rewards": 0, "days": 30}}}, "rules.cap.rewards"),
        ({"rules": {"credit_window_days": 0}}, "rules.credit_window_days"),
        ({"rules": {"min_amount": -5}}, "rules.min_amount"),
        ({"rules": {"review": {"burst_limit": 0}}}, "rules.review.burst_limit"),
        ({"rules": {"surprise": 1}}, "rules.surprise"),
        (
            {"starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"},
            "ends_at",
        ),
        ({"starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"}, "ends_at"),
    ],
)
async def test_a_rule_that_cannot_hold_is_named(client, operator, body, field):
    response = await client.post(
        f"{API}/campaigns", json={"key": "bad", "name": "Bad", **body}, headers=operator
    )
    problem = assert_validation_error(response)
    assert field in str(problem), problem
    assert (await client.get(f"{API}/campaigns/bad", headers=operator)).status_code == 404


async def test_a_bad_key_or_name_is_refused(client, operator):
    for body in ({"key": "Has Caps", "name": "x"}, {"key": "k" * 41, "name": "x"}, {"key": "ok"}):
        assert_validation_error(await client.post(f"{API}/campaigns", json=body, headers=operator))
    for change in ({"name": None}, {"status": "gone"}, {"rules": None}, {"rules": [1]}):
        assert_validation_error(
            await client.patch(f"{API}/campaigns/default", json=change, headers=operator)
        )


# -- codes and sign-ups ------------------------------------------------------------------


async def test_one_active_code_per_campaign(client, user, campaign):
    await campaign("spring")
    _, headers = await user("ann@example.com")
    base = {"expires_at": ahead(days=10)}
    default = await client.post(f"{API}/referral-codes", json=base, headers=headers)
    spring = await client.post(
        f"{API}/referral-codes", json={**base, "campaign": "spring"}, headers=headers
    )
    assert (default.status_code, spring.status_code) == (201, 201)
    assert (default.json()["campaign"], spring.json()["campaign"]) == ("default", "spring")
    assert_problem(
        await client.post(
            f"{API}/referral-codes", json={**base, "campaign": "spring"}, headers=headers
        ),
        409,
        "active_code_exists",
    )
    mine = await client.get(
        f"{API}/referral-codes/me", params={"campaign": "spring"}, headers=headers
    )
    assert mine.json()["code"] == spring.json()["code"]
    assert (await client.get(f"{API}/referral-codes/me", headers=headers)).json()[
        "code"
    ] == default.json()["code"]
    view = await client.get(f"{API}/referral-codes/{spring.json()['code']}")
    assert view.json()["campaign"] == "spring"
    deleted = await client.delete(
        f"{API}/referral-codes/me", params={"campaign": "spring"}, headers=headers
    )
    assert deleted.status_code == 204
    assert (await client.get(f"{API}/referral-codes/{spring.json()['code']}")).status_code == 404
    assert (await client.get(f"{API}/referral-codes/{default.json()['code']}")).status_code == 200


async def test_one_active_code_per_campaign_even_at_once(client, user, campaign):
    await campaign("spring")
    _, headers = await user("ann@example.com")
    body = {"expires_at": ahead(days=10), "campaign": "spring"}
    answers = await asyncio.gather(
        *(client.post(f"{API}/referral-codes", json=body, headers=headers) for _ in range(10))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9


async def test_a_sign_up_lands_in_its_codes_campaign(client, operator, campaign, referrer_in, join):
    await campaign("spring", rules={"review": {"disposable_email": False}})
    ref = await referrer_in("spring")
    friend = await join("friend@mailinator.com", ref["code"])  # not held: the rule is off
    item = (await client.get(f"{API}/admin/referrals", headers=operator)).json()["items"][0]
    assert (item["id"], item["status"]) == (friend["id"], "approved")
    funnel = (await client.get(f"{API}/campaigns/spring/funnel", headers=operator)).json()
    assert funnel["signups"] == 1
    default = (await client.get(f"{API}/campaigns/default/funnel", headers=operator)).json()
    assert default["signups"] == 0


async def test_a_code_of_a_campaign_not_running_signs_no_one_up(
    client, operator, campaign, referrer_in
):
    await campaign("later", starts_at=ahead(days=2))
    await campaign("over", starts_at=ahead(days=-10), ends_at=ahead(days=30))
    await campaign("paused")
    codes = {
        key: (await referrer_in(key, f"{key}@example.com"))["code"]
        for key in ("later", "over", "paused")
    }
    await client.patch(f"{API}/campaigns/paused", json={"status": "paused"}, headers=operator)
    await client.patch(
        f"{API}/campaigns/over", json={"ends_at": ahead(seconds=-1)}, headers=operator
    )
    for key, code in codes.items():
        response = await client.post(
            f"{API}/auth/register",
            json={
                "email": f"friend-{key}@example.com",
                "password": PASSWORD,
                "referral_code": code,
            },
        )
        assert_problem(response, 409, "campaign_not_active")
    assert await User.objects.filter(email__startswith="friend-").count() == 0
    # Its code's use was not counted.
    mine = await client.get(
        f"{API}/referral-codes/me",
        params={"campaign": "paused"},
        headers=await _sign_in(client, "paused@example.com"),
    )
    assert mine.json()["uses"] == 0
    # Resumed, it works again.
    await client.patch(f"{API}/campaigns/paused", json={"status": "active"}, headers=operator)
    response = await client.post(
        f"{API}/auth/register",
        json={
            "email": "friend@example.com",
            "password": PASSWORD,
            "referral_code": codes["paused"],
        },
    )
    assert response.status_code == 201, response.text


async def test_an_ended_campaign_issues_no_code(client, operator, campaign, user):
    await campaign("gone")
    await client.patch(f"{API}/campaigns/gone", json={"status": "ended"}, headers=operator)
    _, headers = await user("ann@example.com")
    assert_problem(
        await client.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=3), "campaign": "gone"},
            headers=headers,
        ),
        409,
        "campaign_not_active",
    )


# -- rules -------------------------------------------------------------------------------


async def test_only_the_qualifying_events_and_amounts_qualify(
    client, api_key, campaign, referrer_in, join
):
    await campaign("shop", rules={"qualifying_events": ["order.*", "upgrade"], "min_amount": 20})
    ref = await referrer_in("shop")
    friend = await join("friend@example.com", ref["code"])
    for n, (event, amount) in enumerate(
        [("signup", 100), ("order.paid", 10), ("order.paid", None), ("upgrade", 19.99)]
    ):
        response = await _convert(
            client, api_key, friend["id"], f"o-{n}", event=event, amount=amount
        )
        assert response.status_code == 201, response.text
        assert response.json()["referral_qualified"] is False
    response = await _convert(client, api_key, friend["id"], "o-9", event="order.paid", amount=20)
    assert response.json()["referral_qualified"] is True
    assert len(response.json()["rewards"]) == 2


async def test_percent_plus_fixed_rounds_down(client, api_key, campaign, referrer_in, join):
    await campaign(
        "pct", rules={"referrer_points": 10, "friend_points": 0, "referrer_percent": 12.5}
    )
    ref = await referrer_in("pct")
    friend = await join("friend@example.com", ref["code"])
    response = await _convert(client, api_key, friend["id"], "o-1", amount=99.99, currency="EUR")
    body = response.json()
    # 10 fixed + floor(12.5% of 99.99 = 12.49875)
    assert [(r["reason"], r["points"], r["campaign"]) for r in body["rewards"]] == [
        ("referral_qualified", 22, "pct")
    ]
    assert body["capped"] is False


async def test_a_credit_window_that_expires(client, api_key, operator, campaign, referrer_in, join):
    await campaign("quick", rules={"credit_window_days": 7})
    ref = await referrer_in("quick")
    on_time = await join("on-time@example.com", ref["code"])
    late = await join("late@example.com", ref["code"])
    with clock.shift(dt.timedelta(days=6, hours=23)):
        assert (await _convert(client, api_key, on_time["id"], "a")).json()["referral_qualified"]
    with clock.shift(dt.timedelta(days=7, minutes=1)):
        response = await _convert(client, api_key, late["id"], "b")
    assert response.status_code == 201
    assert response.json()["referral_qualified"] is False
    assert response.json()["rewards"] == []


async def test_milestones_pay_once_each(client, api_key, campaign, referrer_in, join):
    milestones = [{"qualified": 2, "points": 500}, {"qualified": 3, "points": 1000}]
    await campaign("ms", rules={"friend_points": 0, "milestones": milestones})
    ref = await referrer_in("ms")
    friends = [await join(f"f{n}@example.com", ref["code"]) for n in range(4)]
    reasons = []
    for n, friend in enumerate(friends):
        body = (await _convert(client, api_key, friend["id"], f"o-{n}")).json()
        reasons.append(sorted((r["reason"], r["points"]) for r in body["rewards"]))
    assert reasons == [
        [("referral_qualified", 100)],
        [("milestone", 500), ("referral_qualified", 100)],
        [("milestone", 1000), ("referral_qualified", 100)],
        [("referral_qualified", 100)],
    ]
    assert (await _rewards(client, ref["headers"]))["balance"] == 4 * 100 + 500 + 1000


async def test_a_cap_with_milestones(client, api_key, campaign, referrer_in, join):
    rules = {
        "friend_points": 0,
        "cap": {"rewards": 2, "days": 30},
        "milestones": [{"qualified": 3, "points": 70}],
    }
    await campaign("capped", rules=rules)
    ref = await referrer_in("capped")
    friends = [await join(f"f{n}@example.com", ref["code"]) for n in range(3)]
    bodies = [
        (await _convert(client, api_key, f["id"], f"o-{n}")).json() for n, f in enumerate(friends)
    ]
    assert [b["referral_qualified"] for b in bodies] == [True, True, True]
    assert [b["capped"] for b in bodies] == [False, False, True]
    # Past the cap the referral earns nothing; the milestone it reached still pays.
    assert [r["reason"] for r in bodies[2]["rewards"]] == ["milestone"]
    # A month later the window has room again.
    later = await join("later@example.com", ref["code"])
    with clock.shift(dt.timedelta(days=31)):
        body = (await _convert(client, api_key, later["id"], "o-late")).json()
    assert body["capped"] is False
    assert [r["reason"] for r in body["rewards"]] == ["referral_qualified"]


async def test_a_cap_holds_under_twenty_qualifications_at_once(
    client, api_key, campaign, referrer_in, join
):
    await campaign("cap5", rules={"friend_points": 0, "cap": {"rewards": 5, "days": 30}})
    ref = await referrer_in("cap5")
    friends = [await join(f"f{n}@example.com", ref["code"]) for n in range(20)]
    answers = await asyncio.gather(
        *(_convert(client, api_key, f["id"], f"o-{n}") for n, f in enumerate(friends))
    )
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert all(b["referral_qualified"] for b in bodies)
    assert sum(not b["capped"] for b in bodies) == 5
    assert sum(len(b["rewards"]) for b in bodies) == 5
    assert (await _rewards(client, ref["headers"]))["balance"] == 5 * 100


async def test_a_milestone_pays_once_when_qualifications_race(
    client, api_key, campaign, referrer_in, join
):
    await campaign(
        "race", rules={"friend_points": 0, "milestones": [{"qualified": 5, "points": 9}]}
    )
    ref = await referrer_in("race")
    friends = [await join(f"f{n}@example.com", ref["code"]) for n in range(8)]
    answers = await asyncio.gather(
        *(_convert(client, api_key, f["id"], f"o-{n}") for n, f in enumerate(friends))
    )
    bonuses = [r for a in answers for r in a.json()["rewards"] if r["reason"] == "milestone"]
    assert [b["points"] for b in bonuses] == [9]


# -- the reward lifecycle ----------------------------------------------------------------


async def test_a_hold_then_available_by_a_job_on_time(
    client, core: Core, api_key, campaign, referrer_in, join, user
):
    await campaign("hold", rules={"hold_days": 14})
    ref = await referrer_in("hold")
    await User.objects.filter(id=ref["user"]["id"]).update(telegram_id=4242)
    friend = await join("friend@example.com", ref["code"])
    body = (await _convert(client, api_key, friend["id"], "o-1")).json()
    assert {r["status"] for r in body["rewards"]} == {"pending"}
    granted_at = dt.datetime.fromisoformat(body["rewards"][0]["created_at"])
    available_at = dt.datetime.fromisoformat(body["rewards"][0]["available_at"])
    assert available_at - granted_at == dt.timedelta(days=14)

    mine = await _rewards(client, ref["headers"])
    assert (mine["balance"], mine["pending"]) == (0, 100)
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert (stats["rewards_balance"], stats["rewards_pending"]) == (0, 100)
    # Points in hold are not spent.
    assert_problem(
        await client.post(
            f"{API}/admin/users/{ref['user']['id']}/rewards",
            json={"points": -10, "note": "redeem"},
            headers=api_key,
        ),
        409,
        "insufficient_balance",
    )
    # The release is a job due at available_at, not a scan.
    job = await Job.objects.get(kind=RELEASE)
    assert abs((job.run_at - available_at).total_seconds()) < 1

    worker = core.worker()
    with clock.shift(dt.timedelta(days=13, hours=23)):
        await worker.run_due()
    assert (await _rewards(client, ref["headers"]))["pending"] == 100
    with clock.shift(dt.timedelta(days=14, minutes=1)):
        await worker.run_due()
    mine = await _rewards(client, ref["headers"])
    assert (mine["balance"], mine["pending"]) == (100, 0)
    assert {r["status"] for r in mine["items"]} == {"available"}
    told = await Job.objects.filter(kind=TELEGRAM_MESSAGE).all()
    messages = [j.payload for j in told if j.payload.get("message") == "reward_available"]
    assert [(m["recipient_id"], m["points"], m["campaign"]) for m in messages] == [
        (ref["user"]["id"], 100, "hold")
    ]


async def test_a_refund_in_the_hold_revokes_and_a_later_conversion_qualifies_again(
    client, core: Core, api_key, campaign, referrer_in, join, operator
):
    await campaign("hold", rules={"hold_days": 14})
    ref = await referrer_in("hold")
    friend = await join("friend@example.com", ref["code"])
    first = (await _convert(client, api_key, friend["id"], "o-1", amount=30)).json()
    assert first["referral_qualified"]

    with clock.shift(dt.timedelta(days=3)):
        refunded = await _refund(client, api_key, "o-1")
    assert refunded.status_code == 200, refunded.text
    body = refunded.json()
    assert set(body) == {"conversion", "revoked", "kept"}
    assert body["conversion"]["refunded_at"] is not None
    assert sorted(r["reason"] for r in body["revoked"]) == [
        "referral_qualified",
        "referred_signup_bonus",
    ]
    assert {r["status"] for r in body["revoked"]} == {"revoked"}
    assert body["kept"] == []
    assert (await _rewards(client, ref["headers"]))["pending"] == 0
    # Again: the same answer, nothing happens twice.
    again = await _refund(client, api_key, "o-1")
    assert again.json() == body
    # The release job that was due finds nothing to release.
    with clock.shift(dt.timedelta(days=15)):
        await core.worker().run_due()
    assert (await _rewards(client, ref["headers"]))["balance"] == 0
    # Nothing of the qualification is left: the next conversion qualifies it again.
    second = (await _convert(client, api_key, friend["id"], "o-2")).json()
    assert second["referral_qualified"] is True
    assert {r["status"] for r in second["rewards"]} == {"pending"}
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert stats["qualified"] == 1
    funnel = (await client.get(f"{API}/campaigns/hold/funnel", headers=operator)).json()
    assert (funnel["qualified"], funnel["rewarded"]) == (1, 1)
    assert (funnel["points_granted"], funnel["points_revoked"]) == (300, 150)


async def test_a_refund_after_available_keeps_the_rewards(
    client, core: Core, api_key, campaign, referrer_in, join
):
    await campaign("hold", rules={"hold_days": 2})
    ref = await referrer_in("hold")
    friend = await join("friend@example.com", ref["code"])
    await _convert(client, api_key, friend["id"], "o-1")
    with clock.shift(dt.timedelta(days=2, minutes=5)):
        await core.worker().run_due()
        body = (await _refund(client, api_key, "o-1")).json()
    assert body["revoked"] == []
    assert sorted(r["reason"] for r in body["kept"]) == [
        "referral_qualified",
        "referred_signup_bonus",
    ]
    assert (await _rewards(client, ref["headers"]))["balance"] == 100
    # Kept: the referral stays qualified, a later conversion qualifies nothing more.
    later = (await _convert(client, api_key, friend["id"], "o-2")).json()
    assert later["referral_qualified"] is False


async def test_a_refund_takes_the_milestone_it_paid_while_pending(
    client, api_key, campaign, referrer_in, join
):
    rules = {"friend_points": 0, "hold_days": 5, "milestones": [{"qualified": 2, "points": 40}]}
    await campaign("ms", rules=rules)
    ref = await referrer_in("ms")
    friends = [await join(f"f{n}@example.com", ref["code"]) for n in range(2)]
    for n, friend in enumerate(friends):
        await _convert(client, api_key, friend["id"], f"o-{n}")
    assert (await _rewards(client, ref["headers"]))["pending"] == 240
    body = (await _refund(client, api_key, "o-1")).json()
    assert sorted(r["reason"] for r in body["revoked"]) == ["milestone", "referral_qualified"]
    assert (await _rewards(client, ref["headers"]))["pending"] == 100


async def test_refunds_without_a_qualification_and_unknown_ones(client, api_key, user):
    body, _ = await user("solo@example.com")
    await _convert(client, api_key, body["id"], "o-1")
    refunded = await _refund(client, api_key, "o-1")
    assert refunded.status_code == 200
    assert (refunded.json()["revoked"], refunded.json()["kept"]) == ([], [])
    assert_problem(await _refund(client, api_key, "never-sent"), 404, "conversion_not_found")
    assert_problem(
        await client.post(
            f"{API}/conversions/o-1/refund", json={"reason": "x" * 201}, headers=api_key
        ),
        422,
        "validation_error",
    )
    assert_problem(await client.post(f"{API}/conversions/o-1/refund"), 401, "not_authenticated")
    _, headers = await user("ann@example.com")
    assert_problem(
        await client.post(f"{API}/conversions/o-1/refund", headers=headers), 403, "forbidden"
    )
    # No body at all is a refund without a reason.
    assert (await client.post(f"{API}/conversions/o-1/refund", headers=api_key)).status_code == 200


async def test_a_refund_and_the_release_racing_end_in_one_state(
    client, core: Core, api_key, campaign, referrer_in, join
):
    await campaign("hold", rules={"hold_days": 1, "friend_points": 0})
    ref = await referrer_in("hold")
    friends = [await join(f"f{n}@example.com", ref["code"]) for n in range(6)]
    for n, friend in enumerate(friends):
        await _convert(client, api_key, friend["id"], f"o-{n}")
    with clock.shift(dt.timedelta(days=1, seconds=5)):
        results = await asyncio.gather(
            core.worker().run_due(), *(_refund(client, api_key, f"o-{n}") for n in range(6))
        )
    mine = await _rewards(client, ref["headers"])
    refunds = [r.json() for r in results[1:]]
    for refund in refunds:
        revoked, kept = len(refund["revoked"]), len(refund["kept"])
        assert revoked + kept == 1, refund  # revoked or kept, never both, never neither
    kept = sum(len(r["kept"]) for r in refunds)
    assert (mine["balance"], mine["pending"]) == (100 * kept, 0)
    statuses = sorted(item["status"] for item in mine["items"])
    assert statuses == sorted(["available"] * kept + ["revoked"] * (6 - kept))


async def test_an_approval_and_a_refund_racing_end_in_one_state(
    client, api_key, operator, referrer, join
):
    ref = await referrer()
    held = [await join(f"f{n}@mailinator.com", ref["code"]) for n in range(5)]
    for n, friend in enumerate(held):
        assert (await _convert(client, api_key, friend["id"], f"o-{n}")).json()[
            "referral_qualified"
        ]
    results = await asyncio.gather(
        *(client.post(f"{API}/admin/referrals/{f['id']}/approve", headers=operator) for f in held),
        *(_refund(client, api_key, f"o-{n}") for n in range(5)),
    )
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    mine = await _rewards(client, ref["headers"])
    # The default campaign has no hold: an approval first grants available rewards the
    # refund keeps; a refund first leaves the approval nothing to grant.
    for friend in held:
        theirs = [r for r in mine["items"] if r["referral_id"] == friend["id"]]
        assert len(theirs) <= 1
    assert mine["balance"] == 100 * len(mine["items"])


# -- the funnel --------------------------------------------------------------------------


async def test_the_funnel_of_a_campaign(
    client, core: Core, api_key, operator, campaign, referrer_in, join
):
    await campaign("funnel", rules={"friend_points": 10, "referrer_points": 20})
    ref = await referrer_in("funnel")
    await referrer_in("funnel", "idle@example.com")  # a second referrer, no one joined
    await core.link_opens.record(
        ref["user"]["id"], campaign="funnel", visitor="a", code=ref["code"]
    )
    await core.link_opens.record(
        ref["user"]["id"], campaign="funnel", visitor="b", code=ref["code"]
    )
    await core.link_opens.flush()
    fast = await join("fast@example.com", ref["code"])
    slow = await join("slow@example.com", ref["code"])
    await join("held@mailinator.com", ref["code"])
    rejected = await join("no@mailinator.com", ref["code"])
    await client.post(f"{API}/admin/referrals/{rejected['id']}/reject", headers=operator)
    with clock.shift(dt.timedelta(hours=2)):
        await _convert(client, api_key, fast["id"], "o-1")
    with clock.shift(dt.timedelta(hours=10)):
        await _convert(client, api_key, slow["id"], "o-2")
    funnel = (await client.get(f"{API}/campaigns/funnel/funnel", headers=operator)).json()
    assert funnel == {
        "days": 30,
        "link_opens": 2,
        "signups": 4,
        "qualified": 2,
        "rewarded": 2,
        "pending_review": 1,
        "rejected": 1,
        "points_granted": 60,
        "points_revoked": 0,
        "k_factor": 2.0,
        "median_hours_to_qualify": 6.0,
    }
    assert_validation_error(
        await client.get(f"{API}/campaigns/funnel/funnel", params={"days": 0}, headers=operator)
    )


# -- webhooks ----------------------------------------------------------------------------


async def test_the_lifecycles_events_are_signed_standard_webhooks(
    client, core: Core, operator, api_key, campaign, referrer_in, join, receiver, deliverer
):
    endpoint = await client.post(
        f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=operator
    )
    receiver.secrets.append(endpoint.json()["secret"])
    await campaign(
        "hooks",
        rules={"hold_days": 1, "friend_points": 0, "milestones": [{"qualified": 1, "points": 5}]},
    )
    ref = await referrer_in("hooks")
    friend = await join("friend@example.com", ref["code"])
    await _convert(client, api_key, friend["id"], "o-1")
    other = await join("other@example.com", ref["code"])
    await _convert(client, api_key, other["id"], "o-2")
    await _refund(client, api_key, "o-2")
    with clock.shift(dt.timedelta(days=1, minutes=1)):
        await deliverer.run_due()  # the release
        await deliverer.run_due()  # what it sent
    await deliverer.run_due()
    types = [d.event_type for d in await WebhookDelivery.objects.order_by("id").all()]
    for expected in (
        "campaign.updated",
        "milestone.reached",
        "reward.revoked",
        "conversion.refunded",
        "reward.available",
    ):
        assert expected in types, types
    received = {r.payload["type"]: r.payload["data"] for r in receiver.received}
    assert all(r.verified for r in receiver.received)
    assert received["campaign.updated"]["key"] == "hooks"
    assert received["milestone.reached"]["reason"] == "milestone"
    assert received["reward.available"]["status"] == "available"
    assert received["reward.revoked"]["status"] == "revoked"
    assert received["conversion.refunded"]["external_id"] == "o-2"
    assert received["conversion.refunded"]["refunded_at"] is not None


async def test_the_k_factor_counts_referrers_whose_codes_were_live_in_the_window(
    client, operator, campaign, user, join
):
    await campaign("k")
    owners = {}
    for name, days in (("short", 2), ("long", 100), ("deleted", 100)):
        body, headers = await user(f"{name}@example.com")
        made = await client.post(
            f"{API}/referral-codes",
            json={"expires_at": ahead(days=days), "campaign": "k"},
            headers=headers,
        )
        owners[name] = (body, headers, made.json()["code"])
    await join("friend@example.com", owners["long"][2])
    deleted = await client.delete(
        f"{API}/referral-codes/me", params={"campaign": "k"}, headers=owners["deleted"][1]
    )
    assert deleted.status_code == 204
    funnel = (await client.get(f"{API}/campaigns/k/funnel?days=7", headers=operator)).json()
    assert funnel["k_factor"] == round(1 / 3, 4)  # all three had a code this week
    with clock.shift(dt.timedelta(days=40)):
        await join("later@example.com", owners["long"][2])
        later = await client.get(
            f"{API}/campaigns/k/funnel?days=7", headers=await _sign_in(client, "root@example.com")
        )
    # Forty days on, only the long code was live in the last week: one sign-up, one referrer
    # (the expired and the deleted codes ended before the window).
    assert (later.json()["signups"], later.json()["k_factor"]) == (1, 1.0)


async def test_a_referral_whose_credit_window_passed_shows_expired(
    client, operator, api_key, campaign, referrer_in, join
):
    await campaign("quick", rules={"credit_window_days": 3})
    ref = await referrer_in("quick")
    late = await join("late@example.com", ref["code"])
    on_time = await join("on-time@example.com", ref["code"])
    await _convert(client, api_key, on_time["id"], "o-1")

    def shown(items: list[Json]) -> dict[int, str]:
        return {item["id"]: item["qualification"] for item in items}

    items = (await client.get(f"{API}/admin/referrals", headers=operator)).json()["items"]
    assert shown(items) == {late["id"]: "pending", on_time["id"]: "qualified"}
    with clock.shift(dt.timedelta(days=4)):
        items = (
            await client.get(
                f"{API}/admin/referrals", headers=await _sign_in(client, "root@example.com")
            )
        ).json()["items"]
        assert (await _convert(client, api_key, late["id"], "o-2")).json()[
            "referral_qualified"
        ] is False
    assert shown(items) == {late["id"]: "expired", on_time["id"]: "qualified"}


async def test_a_refused_conversion_qualifies_nothing(client, api_key, referrer, join, user):
    """The qualification and the conversion are one transaction: an `external_id` taken by
    another user's conversion refuses this one and leaves the referral unqualified."""
    other, _ = await user("other@example.com")
    await _convert(client, api_key, other["id"], "o-1")
    ref = await referrer()
    friend = await join("friend@example.com", ref["code"])
    assert_problem(
        await _convert(client, api_key, friend["id"], "o-1"), 409, "external_id_conflict"
    )
    again = (await _convert(client, api_key, friend["id"], "o-2")).json()
    assert again["referral_qualified"] is True  # it was not qualified by the refused one
    assert len(again["rewards"]) == 2
