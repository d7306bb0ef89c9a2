"""Review of suspicious referrals: each reason triggered and not, decisions once."""

from __future__ import annotations

import asyncio

import httpx

from core.webhooks.models import WebhookDelivery
from tests.api.support import assert_problem, assert_validation_error
from tests.conftest import API
from tests.program.conftest import sign_in


async def _referral(client: httpx.AsyncClient, operator, referral_id: int) -> dict:
    items = (await client.get(f"{API}/admin/referrals", headers=operator)).json()["items"]
    (item,) = [item for item in items if item["id"] == referral_id]
    return item


async def test_a_throwaway_mail_domain_is_held(client, operator, referrer, join) -> None:
    ref = await referrer()
    held = await join("someone@mailinator.com", ref["code"])
    sub = await join("else@mx.mailinator.com", ref["code"])
    fine = await join("friend@example.com", ref["code"])

    assert (await _referral(client, operator, held["id"]))["review_reasons"] == ["disposable_email"]
    assert (await _referral(client, operator, sub["id"]))["status"] == "pending_review"
    item = await _referral(client, operator, fine["id"])
    assert (item["status"], item["review_reasons"]) == ("approved", [])


async def test_the_referrers_sign_in_network_is_held(
    client, operator, referrer, join, client_from
) -> None:
    ref = await referrer()
    await sign_in(await client_from("203.0.113.10"), "ref@example.com")  # their last sign-in

    same = await join("a@example.com", ref["code"], http=await client_from("203.0.113.77"))
    other = await join("b@example.com", ref["code"], http=await client_from("198.51.100.5"))

    assert (await _referral(client, operator, same["id"]))["review_reasons"] == [
        "same_network_as_referrer"
    ]
    assert (await _referral(client, operator, other["id"]))["status"] == "approved"


async def test_ipv6_networks_are_compared_by_their_64(
    client, operator, referrer, join, client_from
) -> None:
    ref = await referrer()
    await sign_in(await client_from("2001:db8:1:2::5"), "ref@example.com")
    same = await join("a@example.com", ref["code"], http=await client_from("2001:db8:1:2:ff::9"))
    other = await join("b@example.com", ref["code"], http=await client_from("2001:db8:1:3::1"))
    assert (await _referral(client, operator, same["id"]))["status"] == "pending_review"
    assert (await _referral(client, operator, other["id"]))["status"] == "approved"


async def test_only_the_network_is_stored(core, referrer, client_from) -> None:
    from core.users.models import User

    await referrer()
    await sign_in(await client_from("203.0.113.10"), "ref@example.com")
    stored = await User.objects.get(email="ref@example.com")
    assert stored.signin_network == "203.0.113.0/24"


async def test_a_burst_of_sign_ups_with_one_code_is_held(
    client, core, operator, referrer, join
) -> None:
    original = core.campaigns.settings
    core.campaigns.settings = original.model_copy(update={"review_burst_limit": 3})
    try:
        ref = await referrer()
        joined = [await join(f"p{n}@example.com", ref["code"]) for n in range(5)]
    finally:
        core.campaigns.settings = original
    statuses = [(await _referral(client, operator, j["id"]))["status"] for j in joined]
    assert statuses == ["approved"] * 3 + ["pending_review"] * 2
    reasons = (await _referral(client, operator, joined[4]["id"]))["review_reasons"]
    assert reasons == ["signup_burst"]


async def test_a_held_referral_earns_once_approved(
    client, operator, api_key, referrer, join
) -> None:
    ref = await referrer()
    held = await join("held@mailinator.com", ref["code"], full_name="Held")
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert (stats["referrals"], stats["approved"], stats["pending_review"]) == (1, 0, 1)
    listed = (
        await client.get(f"{API}/users/{ref['user']['id']}/referrals", headers=ref["headers"])
    ).json()
    assert listed["items"][0]["status"] == "pending_review"

    converted = await client.post(
        f"{API}/conversions",
        json={"user_id": held["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    assert (converted.json()["referral_qualified"], converted.json()["rewards"]) == (True, [])
    assert (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()[
        "balance"
    ] == 0

    approved = await client.post(f"{API}/admin/referrals/{held['id']}/approve", headers=operator)
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert approved.json()["review_reasons"] == ["disposable_email"]  # why it was held
    assert (await client.get(f"{API}/users/me/rewards", headers=ref["headers"])).json()[
        "balance"
    ] == 100
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert (stats["approved"], stats["pending_review"], stats["qualified"]) == (1, 0, 1)
    assert_problem(
        await client.post(f"{API}/admin/referrals/{held['id']}/reject", headers=operator),
        409,
        "already_reviewed",
    )
    events = [d.event_type for d in await WebhookDelivery.objects.all()]
    assert events == []  # no endpoint: nothing queued


async def test_a_rejected_referral_never_earns(client, operator, api_key, referrer, join) -> None:
    ref = await referrer()
    held = await join("held@mailinator.com", ref["code"])
    rejected = await client.post(f"{API}/admin/referrals/{held['id']}/reject", headers=operator)
    assert rejected.json()["status"] == "rejected"
    converted = await client.post(
        f"{API}/conversions",
        json={"user_id": held["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    assert (converted.json()["referral_qualified"], converted.json()["rewards"]) == (False, [])
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert (stats["rejected"], stats["pending_review"], stats["qualified"]) == (1, 0, 0)


async def test_approve_and_reject_at_once_make_one_decision(
    client, operator, referrer, join
) -> None:
    ref = await referrer()
    held = [await join(f"h{n}@mailinator.com", ref["code"]) for n in range(5)]
    for item in held:
        answers = await asyncio.gather(
            client.post(f"{API}/admin/referrals/{item['id']}/approve", headers=operator),
            client.post(f"{API}/admin/referrals/{item['id']}/reject", headers=operator),
        )
        assert sorted(r.status_code for r in answers) == [200, 409]
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    assert stats["approved"] + stats["rejected"] == 5
    assert stats["pending_review"] == 0


async def test_decisions_on_what_is_not_held(client, operator, referrer, join, register) -> None:
    ref = await referrer()
    fine = await join("fine@example.com", ref["code"])
    assert_problem(
        await client.post(f"{API}/admin/referrals/{fine['id']}/approve", headers=operator),
        409,
        "already_reviewed",
    )
    alone = await register("alone@example.com")
    for referral_id in (alone["id"], 999999, 2**40):
        assert_problem(
            await client.post(f"{API}/admin/referrals/{referral_id}/reject", headers=operator),
            404,
            "referral_not_found",
        )


async def test_the_review_queue_is_listed_by_status(client, operator, referrer, join) -> None:
    ref = await referrer()
    held = [await join(f"h{n}@mailinator.com", ref["code"]) for n in range(3)]
    await join("fine@example.com", ref["code"])
    first = (
        await client.get(
            f"{API}/admin/referrals",
            params={"status": "pending_review", "limit": 2},
            headers=operator,
        )
    ).json()
    rest = (
        await client.get(
            f"{API}/admin/referrals",
            params={"status": "pending_review", "cursor": first["next_cursor"]},
            headers=operator,
        )
    ).json()
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == [h["id"] for h in reversed(held)]
    item = first["items"][0]
    assert set(item) == {
        "id",
        "email",
        "full_name",
        "referrer_id",
        "referral_code",
        "status",
        "review_reasons",
        "created_at",
        "qualification",
    }
    assert (item["referrer_id"], item["referral_code"]) == (ref["user"]["id"], ref["code"])
    assert_validation_error(
        await client.get(f"{API}/admin/referrals", params={"status": "odd"}, headers=operator)
    )
    everything = (await client.get(f"{API}/admin/referrals", headers=operator)).json()["items"]
    assert len(everything) == 4


async def test_a_qualified_referral_rejected_later_is_no_longer_counted_qualified(
    client, operator, api_key, referrer, join
) -> None:
    """ "Qualified" counts referrals that qualified and were not rejected, in every number."""
    ref = await referrer()
    held = await join("held@mailinator.com", ref["code"])
    converted = await client.post(
        f"{API}/conversions",
        json={"user_id": held["id"], "event": "purchase", "external_id": "o-1"},
        headers=api_key,
    )
    assert converted.json()["referral_qualified"] is True
    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    overview = (await client.get(f"{API}/admin/stats", headers=operator)).json()
    assert (stats["qualified"], overview["totals"]["qualified"]) == (1, 1)
    assert overview["days"][-1]["qualified"] == 1

    await client.post(f"{API}/admin/referrals/{held['id']}/reject", headers=operator)

    stats = (await client.get(f"{API}/users/me/referral-stats", headers=ref["headers"])).json()
    overview = (await client.get(f"{API}/admin/stats", headers=operator)).json()
    assert (stats["qualified"], stats["rejected"]) == (0, 1)
    assert overview["totals"]["qualified"] == 0
    assert overview["days"][-1]["qualified"] == 0


async def test_behind_a_trusted_proxy_review_sees_the_real_clients_with_limits_off(
    core, settings, operator, referrer, join
) -> None:
    """TRUSTED_PROXIES is its own setting: with rate limits off (as here) the forwarded
    address still decides review, and the audit log records it."""
    from api.main import create_app

    assert settings.rate_limit.enabled is False
    http = settings.http.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    app = create_app(settings.model_copy(update={"http": http}), core=core)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as proxy:

        def via(address: str) -> dict[str, str]:
            return {"X-Forwarded-For": address}

        ref = await referrer()
        signed_in = await proxy.post(
            f"{API}/auth/token",
            data={"username": "ref@example.com", "password": "correct horse battery"},
            headers=via("203.0.113.10"),
        )
        assert signed_in.status_code == 200

        async def join_via(email: str, address: str) -> dict:
            response = await proxy.post(
                f"{API}/auth/register",
                json={"email": email, "password": "a long password", "referral_code": ref["code"]},
                headers=via(address),
            )
            assert response.status_code == 201, response.text
            return dict(response.json())

        same = await join_via("a@example.com", "203.0.113.77")
        other = await join_via("b@example.com", "198.51.100.5")
        queue = (
            await proxy.get(f"{API}/admin/referrals", headers={**operator, **via("192.0.2.44")})
        ).json()["items"]
        status = {item["id"]: item["status"] for item in queue}
        assert (status[same["id"]], status[other["id"]]) == ("pending_review", "approved")

        await proxy.post(
            f"{API}/admin/referrals/{same['id']}/approve", headers={**operator, **via("192.0.2.44")}
        )
        audit = (await proxy.get(f"{API}/admin/audit", headers=operator)).json()["items"]
        assert audit[0]["action"] == "referral.approved"
        assert audit[0]["actor"]["address"] == "192.0.2.44"
