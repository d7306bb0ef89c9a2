"""Webhooks: endpoints, signed deliveries (Standard Webhooks), retries, SSRF refusals."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import httpx
import pytest

from api.schemas import ReferralCodeRead, UserRead
from core.container import Core
from core.infra import clock
from core.jobs.worker import Worker
from core.webhooks.models import WebhookDelivery
from core.webhooks.sender import Sender, refused_address
from tests.api.support import ahead, assert_problem, assert_validation_error
from tests.conftest import API, PASSWORD
from tests.redis_server import free_port
from tests.webhooks.receiver import Receiver

# WEBHOOK_RETRY_SCHEDULE's default: seven pauses, eight attempts.
PAUSES = (5, 300, 1800, 7200, 18000, 36000, 36000)


async def _deliveries(client: httpx.AsyncClient, headers: dict[str, str], hook_id: int) -> list:
    response = await client.get(f"{API}/webhooks/{hook_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_an_endpoint_is_created_read_changed_and_deleted(
    client: httpx.AsyncClient, operator, receiver: Receiver
) -> None:
    created = await client.post(
        f"{API}/webhooks",
        json={"url": receiver.url, "events": ["user.created"], "description": "CRM"},
        headers=operator,
    )
    assert created.status_code == 201
    hook = created.json()
    assert set(hook) == {
        "id",
        "url",
        "events",
        "description",
        "enabled",
        "secret",
        "created_at",
        "previous_secret_until",
        "consecutive_failures",
        "disabled_reason",
    }
    assert hook["previous_secret_until"] is None
    assert (hook["consecutive_failures"], hook["disabled_reason"]) == (0, None)
    assert hook["secret"].startswith("whsec_")
    assert (hook["url"], hook["events"], hook["enabled"]) == (receiver.url, ["user.created"], True)

    assert (await client.get(f"{API}/webhooks/{hook['id']}", headers=operator)).json() == hook
    assert (await client.get(f"{API}/webhooks", headers=operator)).json() == {"items": [hook]}

    changed = await client.patch(
        f"{API}/webhooks/{hook['id']}",
        json={"events": ["*"], "enabled": False, "description": None},
        headers=operator,
    )
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["enabled"]) == (["*"], False)
    assert changed.json()["description"] is None
    assert changed.json()["secret"] == hook["secret"]

    assert (
        await client.delete(f"{API}/webhooks/{hook['id']}", headers=operator)
    ).status_code == 204
    for response in (
        await client.get(f"{API}/webhooks/{hook['id']}", headers=operator),
        await client.delete(f"{API}/webhooks/{hook['id']}", headers=operator),
        await client.patch(f"{API}/webhooks/{hook['id']}", json={}, headers=operator),
        await client.post(f"{API}/webhooks/{hook['id']}/test", headers=operator),
        await client.post(f"{API}/webhooks/{hook['id']}/rotate-secret", headers=operator),
        await client.get(f"{API}/webhooks/{hook['id']}/deliveries", headers=operator),
        await client.get(f"{API}/webhooks/99999999999", headers=operator),
    ):
        assert_problem(response, 404, "webhook_not_found")


async def test_bad_urls_and_unknown_events_are_422(client: httpx.AsyncClient, operator) -> None:
    hook = await client.post(
        f"{API}/webhooks", json={"url": "https://example.com/h", "events": ["*"]}, headers=operator
    )
    for url in (
        "ftp://example.com/x",
        "example.com/hook",
        "http://",
        "javascript:alert(1)",
        "http://[::1/",
        "http://[not-ipv6]/x",
        "http://exa mple.com/x",
        "http://example.com/x\r\nX-Injected: 1",
        "http://example.com/\x00",
        "http://example.com:99999/x",
        "http://example.com:0/x",
        "http://example.com:port/x",
        "http://user:pass@example.com/x",
        "http://exa_mple..com/x",
        "http://-bad-.example.com/x",
        "https://example.com/x#frag",
        "http://" + "a" * 64 + ".example.com/",
        "https://example.com/" + "x" * 2000,
    ):
        response = await client.post(
            f"{API}/webhooks", json={"url": url, "events": ["*"]}, headers=operator
        )
        assert_validation_error(response, "url")
        changed = await client.patch(
            f"{API}/webhooks/{hook.json()['id']}", json={"url": url}, headers=operator
        )
        assert_validation_error(changed, "url")
    for url in (
        "https://example.com",
        "http://127.0.0.1:8080/hooks?x=1",
        "http://[2001:db8::1]:8443/h",
        "https://bücher.example/h",
        "https://hooks.example.com./h",
    ):
        response = await client.post(
            f"{API}/webhooks", json={"url": url, "events": ["*"]}, headers=operator
        )
        assert response.status_code == 201, (url, response.text)
    for events in (["user.deleted"], [], ["*", "nope"]):
        response = await client.post(
            f"{API}/webhooks",
            json={"url": "https://example.com/hook", "events": events},
            headers=operator,
        )
        assert_validation_error(response, "events")


async def test_events_arrive_signed_with_the_apis_own_shapes(
    client: httpx.AsyncClient, core: Core, user, endpoint, receiver: Receiver, deliverer: Worker
) -> None:
    hook = await endpoint()
    owner, headers = await user("owner@example.com", full_name="Owner")
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=headers
    )
    code = created.json()["code"]
    friend = await client.post(
        f"{API}/auth/register",
        json={"email": "friend@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert (await client.delete(f"{API}/referral-codes/me", headers=headers)).status_code == 204
    assert receiver.received == []  # nothing is sent by the requests themselves

    await deliverer.run_due()

    types = [item.payload["type"] for item in receiver.received]
    assert sorted(types) == sorted(
        [
            "user.created",
            "user.created",
            "referral_code.created",
            "referral.created",
            "referral_code.deleted",
        ]
    )
    assert all(item.verified for item in receiver.received), "every signature verifies"
    assert len({item.message_id for item in receiver.received}) == 5
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in receiver.received:
        by_type.setdefault(item.payload["type"], []).append(item.payload)
        assert item.headers["content-type"] == "application/json"
        assert item.message_id.startswith("msg_")
        assert abs(int(item.headers["webhook-timestamp"]) - clock.timestamp()) < 60
    users = {payload["data"]["email"]: payload["data"] for payload in by_type["user.created"]}
    assert UserRead.model_validate(users["owner@example.com"]).id == owner["id"]
    assert users["friend@example.com"] == friend.json()  # exactly what the API answered
    code_data = by_type["referral_code.created"][0]["data"]
    assert code_data["owner_id"] == owner["id"]
    assert ReferralCodeRead.model_validate(code_data) == ReferralCodeRead.model_validate(
        created.json()
    )
    assert by_type["referral_code.deleted"][0]["data"]["code"] == code
    referral = by_type["referral.created"][0]["data"]
    assert referral == {
        "id": friend.json()["id"],
        "email": "friend@example.com",
        "full_name": None,
        "referrer_id": owner["id"],
        "referral_code": code,
        "status": "approved",
        "review_reasons": [],
        "created_at": friend.json()["created_at"],
        "qualification": "pending",
    }
    items = await _deliveries(client, {**headers, **(await _op(client))}, hook["id"])
    assert {item["status"] for item in items} == {"succeeded"}
    assert {item["attempt"] for item in items} == {1}
    assert all(item["response_status"] == 200 and item["error"] is None for item in items)


async def _op(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post(
        f"{API}/auth/token", data={"username": "root@example.com", "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_only_subscribed_enabled_endpoints_get_an_event(
    client: httpx.AsyncClient, operator, register, endpoint, receiver: Receiver, deliverer
) -> None:
    codes_only = await endpoint(["referral_code.created"])
    everything = await endpoint(["*"])
    await client.patch(
        f"{API}/webhooks/{everything['id']}", json={"enabled": False}, headers=operator
    )

    await register("ann@example.com")
    await deliverer.run_due()

    assert receiver.received == []
    assert await _deliveries(client, operator, codes_only["id"]) == []
    assert await _deliveries(client, operator, everything["id"]) == []


async def test_a_failing_receiver_is_retried_on_the_schedule_with_the_same_id(
    client: httpx.AsyncClient, operator, register, endpoint, receiver: Receiver, deliverer
) -> None:
    hook = await endpoint(["user.created"])
    receiver.answers = [500, 503]
    await register("ann@example.com")

    await deliverer.run_due()
    (item,) = await _deliveries(client, operator, hook["id"])
    assert (item["status"], item["attempt"], item["response_status"]) == ("pending", 1, 500)
    assert item["error"] == "HTTP 500"
    due = dt.datetime.fromisoformat(item["next_attempt_at"])
    assert PAUSES[0] - 1 < (due - clock.utcnow()).total_seconds() <= PAUSES[0]

    with clock.shift(dt.timedelta(seconds=PAUSES[0] - 2)):
        assert await deliverer.run_due() == 0  # not before its time
    with clock.shift(dt.timedelta(seconds=PAUSES[0] + 1)):
        assert await deliverer.run_due() == 1
    with clock.shift(dt.timedelta(seconds=PAUSES[0] + PAUSES[1] + 2)):
        assert await deliverer.run_due() == 1

    assert [r.answered for r in receiver.received] == [500, 503, 200]
    assert len({r.message_id for r in receiver.received}) == 1  # one webhook-id throughout
    assert all(r.verified for r in receiver.received)
    (item,) = await _deliveries(client, operator, hook["id"])
    assert (item["status"], item["attempt"], item["response_status"]) == ("succeeded", 3, 200)
    assert item["next_attempt_at"] is None


async def test_a_dead_receiver_ends_failed_and_can_be_retried_by_hand(
    client: httpx.AsyncClient, operator, register, endpoint, receiver: Receiver, deliverer
) -> None:
    hook = await endpoint(["user.created"], url=f"http://127.0.0.1:{free_port()}/gone")
    await register("ann@example.com")

    later = dt.timedelta()
    await deliverer.run_due()
    for pause in PAUSES:
        later += dt.timedelta(seconds=pause + 1)
        with clock.shift(later):
            assert await deliverer.run_due() == 1
    with clock.shift(later + dt.timedelta(days=2)):
        assert await deliverer.run_due() == 0  # nothing left to try

    (item,) = await _deliveries(client, operator, hook["id"])
    assert (item["status"], item["attempt"]) == ("failed", len(PAUSES) + 1)
    assert "ConnectError" in item["error"]
    assert item["next_attempt_at"] is None
    failed = await client.get(
        f"{API}/admin/deliveries", params={"status": "failed"}, headers=operator
    )
    assert [(d["id"], d["endpoint_id"]) for d in failed.json()["items"]] == [
        (item["id"], hook["id"])
    ]
    assert (
        await client.get(f"{API}/admin/deliveries", params={"status": "pending"}, headers=operator)
    ).json()["items"] == []

    # The receiver is back (at another address): the operator retries by hand.
    await client.patch(f"{API}/webhooks/{hook['id']}", json={"url": receiver.url}, headers=operator)
    retried = await client.post(f"{API}/admin/deliveries/{item['id']}/retry", headers=operator)
    assert retried.status_code == 202
    again = await client.post(f"{API}/admin/deliveries/{item['id']}/retry", headers=operator)
    assert_problem(again, 409, "delivery_not_failed")  # only a failed delivery
    await deliverer.run_due()
    (arrived,) = receiver.received
    assert arrived.message_id == item["message_id"]
    assert arrived.verified
    (item,) = await _deliveries(client, operator, hook["id"])
    assert (item["status"], item["attempt"]) == ("succeeded", len(PAUSES) + 2)
    assert_problem(
        await client.post(f"{API}/admin/deliveries/99999/retry", headers=operator),
        404,
        "delivery_not_found",
    )


async def test_private_addresses_are_refused_without_the_setting(
    client: httpx.AsyncClient, core: Core, operator, register, endpoint, receiver: Receiver
) -> None:
    assert core.webhooks.sender.allow_private_networks is False  # the default
    hook = await endpoint(["user.created"])
    await register("ann@example.com")

    await core.worker().run_due()

    assert receiver.received == []
    (item,) = await _deliveries(client, operator, hook["id"])
    assert item["status"] == "pending"
    assert item["error"] == (
        "address 127.0.0.1 is loopback: refused (WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)"
    )


async def test_redirects_are_not_followed(
    client: httpx.AsyncClient, operator, register, endpoint, receiver: Receiver, deliverer
) -> None:
    hook = await endpoint(["user.created"], url=f"{receiver.base}/redirect")
    await register("ann@example.com")
    await deliverer.run_due()
    (item,) = await _deliveries(client, operator, hook["id"])
    assert (item["status"], item["response_status"], item["error"]) == ("pending", 307, "HTTP 307")
    assert [r.answered for r in receiver.received] == [307]  # /hook never reached


async def test_a_rotated_secret_keeps_signing_for_a_day(
    client: httpx.AsyncClient, operator, api_key, endpoint, receiver: Receiver, deliverer
) -> None:
    hook = await endpoint(["ping"])
    old = receiver.secrets.pop()
    rotated = await client.post(f"{API}/webhooks/{hook['id']}/rotate-secret", headers=operator)
    new = rotated.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")
    # The answer says until when the old secret signs too.
    until = dt.datetime.fromisoformat(rotated.json()["previous_secret_until"])
    assert until - clock.utcnow() > dt.timedelta(hours=23, minutes=59)
    assert until - clock.utcnow() <= dt.timedelta(hours=24)

    for secrets in ([old], [new]):
        receiver.secrets = secrets
        tested = await client.post(f"{API}/webhooks/{hook['id']}/test", headers=operator)
        assert tested.status_code == 202
        # The answer is the queued delivery, to follow in the deliveries list.
        assert (tested.json()["event_type"], tested.json()["status"]) == ("ping", "pending")
        await deliverer.run_due()
        (latest, *_) = await _deliveries(client, operator, hook["id"])
        assert (latest["id"], latest["status"]) == (tested.json()["id"], "succeeded")
        assert receiver.received[-1].verified
        assert receiver.received[-1].payload["type"] == "ping"
        assert receiver.received[-1].payload["data"] == {}
    assert len(receiver.received[-1].headers["webhook-signature"].split(" ")) == 2

    with clock.shift(dt.timedelta(hours=25)):  # (a key: the access token has expired by then)
        tested = await client.post(f"{API}/webhooks/{hook['id']}/test", headers=api_key)
        assert tested.status_code == 202
        await deliverer.run_due()
    assert receiver.received[-1].headers["webhook-signature"].count("v1,") == 1
    receiver.secrets = [old]
    assert not receiver.verify(receiver.received[-1].body, receiver.received[-1].headers)


async def test_deliveries_are_listed_newest_first_by_cursor(
    client: httpx.AsyncClient, operator, endpoint, deliverer
) -> None:
    hook = await endpoint(["ping"])
    for _ in range(3):
        await client.post(f"{API}/webhooks/{hook['id']}/test", headers=operator)
    first = await client.get(
        f"{API}/webhooks/{hook['id']}/deliveries", params={"limit": 2}, headers=operator
    )
    page = first.json()
    assert len(page["items"]) == 2
    rest = await client.get(
        f"{API}/webhooks/{hook['id']}/deliveries",
        params={"cursor": page["next_cursor"]},
        headers=operator,
    )
    ids = [item["id"] for item in page["items"] + rest.json()["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3
    assert rest.json()["next_cursor"] is None
    assert set(page["items"][0]) == {
        "id",
        "message_id",
        "event_type",
        "attempt",
        "status",
        "response_status",
        "error",
        "created_at",
        "next_attempt_at",
    }
    assert_validation_error(
        await client.get(f"{API}/admin/deliveries", params={"status": "lost"}, headers=operator)
    )


async def test_finished_deliveries_are_removed_after_their_retention(
    client: httpx.AsyncClient, core: Core, operator, endpoint, deliverer
) -> None:
    hook = await endpoint(["ping"])
    await client.post(f"{API}/webhooks/{hook['id']}/test", headers=operator)
    await deliverer.run_due()
    assert await WebhookDelivery.objects.count() == 1
    retention = dt.timedelta(days=core.settings.jobs.retention_days)
    with clock.shift(retention + dt.timedelta(hours=1)):
        for task in deliverer.housekeeping:
            await task()
    assert await WebhookDelivery.objects.count() == 0


async def test_an_attempt_is_counted_when_it_starts(
    client: httpx.AsyncClient, core: Core, operator, register, endpoint, receiver: Receiver
) -> None:
    """A worker that dies after the POST but before recording it leaves the attempt counted:
    the count says what the receiver may have seen."""

    class DiesAfterSending(Sender):
        async def send(self, **values: Any) -> Any:
            await super().send(**values)
            raise RuntimeError("the worker died here")

    original = core.webhooks.sender
    core.webhooks.sender = DiesAfterSending(timeout=2, allow_private_networks=True)
    try:
        hook = await endpoint(["user.created"])
        await register("ann@example.com")
        await core.worker().run_due()
        (item,) = await _deliveries(client, operator, hook["id"])
        assert (len(receiver.received), item["attempt"], item["status"]) == (1, 1, "pending")
        with clock.shift(dt.timedelta(seconds=PAUSES[0] + 1)):
            await core.worker().run_due()
        (item,) = await _deliveries(client, operator, hook["id"])
        assert (len(receiver.received), item["attempt"]) == (2, 2)
    finally:
        await core.webhooks.sender.close()
        core.webhooks.sender = original


def test_ipv6_forms_that_embed_a_non_public_ipv4_are_refused() -> None:
    for address in (
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata address 169.254.169.254
        "2002:0a00:0001::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:a00:1::1",  # Teredo, server 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:192.168.1.1",  # IPv4-mapped
        "::1",
        "fe80::1",
        "fc00::1",
    ):
        assert refused_address(ipaddress.ip_address(address)) is not None, address
    for address in ("2606:4700:4700::1111", "2002:808:808::1", "8.8.8.8"):
        assert refused_address(ipaddress.ip_address(address)) is None, address


@pytest.mark.usefixtures("one_attempt")
async def test_an_endpoint_failing_in_a_row_is_warned_about_then_switched_off(
    client: httpx.AsyncClient,
    core: Core,
    operator,
    register,
    endpoint,
    receiver: Receiver,
    deliverer,
) -> None:
    """WEBHOOK_DISABLE_AFTER_FAILURES (4 here, one attempt per delivery): the operators hear
    of it at half (audit, chat for superusers linked to Telegram), then it is switched off;
    enabling it again starts the count over and deliveries resume."""
    from core.jobs.models import Job
    from core.users.models import User

    me = (await client.get(f"{API}/users/me", headers=operator)).json()
    await User.objects.filter(id=me["id"]).update(telegram_id=777)
    limit = core.webhooks.disable_after_failures
    core.webhooks.disable_after_failures = 4
    try:
        hook = await endpoint(["user.created"], url=f"http://127.0.0.1:{free_port()}/gone")
        for n in range(5):
            await register(f"user{n}@example.com")
            await deliverer.run_due()
            state = (await client.get(f"{API}/webhooks/{hook['id']}", headers=operator)).json()
            if n < 3:
                assert (state["enabled"], state["consecutive_failures"]) == (True, n + 1)
        assert state["enabled"] is False
        assert state["consecutive_failures"] == 4
        assert state["disabled_reason"] == "switched off after 4 failed deliveries in a row"
        deliveries = await _deliveries(client, operator, hook["id"])
        assert len(deliveries) == 4  # the fifth sign-up found no enabled endpoint

        audit = (await client.get(f"{API}/admin/audit", headers=operator)).json()["items"]
        actions = [(a["action"], a["actor"]["user_id"]) for a in audit]
        assert ("webhook.failing", None) in actions
        assert ("webhook.disabled", None) in actions
        chats = [j.payload for j in await Job.objects.filter(kind="telegram.message").all()]
        assert [(c["recipient_id"], c["message"], c["failures"]) for c in chats] == [
            (me["id"], "webhook_failing", 2),
            (me["id"], "webhook_disabled", 4),
        ]

        # Fixed and switched on again: the count starts over, events flow again.
        changed = await client.patch(
            f"{API}/webhooks/{hook['id']}",
            json={"url": receiver.url, "enabled": True},
            headers=operator,
        )
        assert (changed.json()["consecutive_failures"], changed.json()["disabled_reason"]) == (
            0,
            None,
        )
        await register("back@example.com")
        await deliverer.run_due()
        assert [item.payload["data"]["email"] for item in receiver.received] == ["back@example.com"]
        # The four that failed while it was broken, in one go.
        retried = await client.post(
            f"{API}/webhooks/{hook['id']}/deliveries/retry-failed", headers=operator
        )
        assert (retried.status_code, retried.json()) == (202, {"retried": 4})
        await deliverer.run_due()
        emails = sorted(item.payload["data"]["email"] for item in receiver.received)
        assert emails == sorted(["back@example.com", *(f"user{n}@example.com" for n in range(4))])
        again = await client.post(
            f"{API}/webhooks/{hook['id']}/deliveries/retry-failed", headers=operator
        )
        assert again.json() == {"retried": 0}
        assert_problem(
            await client.post(f"{API}/webhooks/999999/deliveries/retry-failed", headers=operator),
            404,
            "webhook_not_found",
        )
    finally:
        core.webhooks.disable_after_failures = limit


@pytest.mark.usefixtures("one_attempt")
async def test_a_worker_dying_during_the_last_attempt_leaves_a_failed_delivery_to_retry(
    client: httpx.AsyncClient,
    core: Core,
    operator,
    register,
    endpoint,
    receiver: Receiver,
    deliverer,
) -> None:
    """The job fails for good without its handler (the worker that ran it is gone); the
    final-failure hook fails the delivery too, so an operator can retry it."""
    from core.webhooks.service import WEBHOOK_DELIVERY

    hook = await endpoint(["user.created"])
    await register("ann@example.com")
    # A worker claims the only attempt, then dies before it records anything.
    (claimed,) = await core.jobs.claim(kinds=[WEBHOOK_DELIVERY], limit=1, lease_seconds=30)
    assert claimed.is_last_attempt
    with clock.shift(dt.timedelta(seconds=31)):  # its lease ends
        assert await deliverer.run_due() == 1
    (item,) = await _deliveries(client, operator, hook["id"])
    assert (item["status"], item["error"]) == (
        "failed",
        "the worker stopped during the last attempt",
    )
    retried = await client.post(f"{API}/admin/deliveries/{item['id']}/retry", headers=operator)
    assert retried.status_code == 202
    await deliverer.run_due()
    (item,) = await _deliveries(client, operator, hook["id"])
    assert item["status"] == "succeeded"
    assert [r.message_id for r in receiver.received] == [item["message_id"]]
