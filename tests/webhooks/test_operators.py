"""Operators: superuser tokens and API keys, and the audit log of what they do."""

from __future__ import annotations

import httpx

from core.operators.models import ApiKey
from tests.api.support import assert_problem, assert_validation_error
from tests.conftest import API


async def test_operator_endpoints_need_a_superuser_or_an_api_key(
    client: httpx.AsyncClient, user, operator, api_key
) -> None:
    assert_problem(await client.get(f"{API}/webhooks"), 401, "not_authenticated")
    _, headers = await user("ann@example.com")
    assert_problem(await client.get(f"{API}/webhooks", headers=headers), 403, "forbidden")
    assert (await client.get(f"{API}/webhooks", headers=operator)).status_code == 200
    assert (await client.get(f"{API}/webhooks", headers=api_key)).status_code == 200
    for junk in ("rk_nonsense", "not-a-key", "rk_" + "x" * 500):
        refused = await client.get(f"{API}/webhooks", headers={"X-API-Key": junk})
        assert_problem(refused, 401, "not_authenticated")


async def test_an_api_key_is_shown_once_and_stored_as_a_digest(
    client: httpx.AsyncClient, operator
) -> None:
    created = await client.post(f"{API}/api-keys", json={"name": "billing"}, headers=operator)
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("rk_")
    assert set(body) == {"id", "name", "key", "created_at"}
    (row,) = await ApiKey.objects.all()
    assert body["key"] not in row.key_digest
    assert len(row.key_digest) == 64

    listed = (await client.get(f"{API}/api-keys", headers=operator)).json()
    assert listed["items"] == [
        {
            "id": body["id"],
            "name": "billing",
            "created_at": body["created_at"],
            "last_used_at": None,
        }
    ]
    used = await client.get(f"{API}/webhooks", headers={"X-API-Key": body["key"]})
    assert used.status_code == 200
    (item,) = (await client.get(f"{API}/api-keys", headers=operator)).json()["items"]
    assert item["last_used_at"] is not None
    assert "key" not in item


async def test_a_deleted_key_stops_working_at_once(client: httpx.AsyncClient, operator) -> None:
    created = (await client.post(f"{API}/api-keys", json={"name": "x"}, headers=operator)).json()
    key = {"X-API-Key": created["key"]}
    assert (await client.get(f"{API}/webhooks", headers=key)).status_code == 200

    deleted = await client.delete(f"{API}/api-keys/{created['id']}", headers=operator)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"{API}/webhooks", headers=key), 401, "not_authenticated")
    again = await client.delete(f"{API}/api-keys/{created['id']}", headers=operator)
    assert_problem(again, 404, "api_key_not_found")
    assert_problem(
        await client.delete(f"{API}/api-keys/99999999999", headers=operator),
        404,
        "api_key_not_found",
    )


async def test_a_key_cannot_mint_keys(client: httpx.AsyncClient, api_key) -> None:
    for response in (
        await client.post(f"{API}/api-keys", json={"name": "more"}, headers=api_key),
        await client.get(f"{API}/api-keys", headers=api_key),
        await client.delete(f"{API}/api-keys/1", headers=api_key),
    ):
        assert_problem(response, 403, "forbidden")


async def test_key_names_are_checked(client: httpx.AsyncClient, operator) -> None:
    for name in ("", "x" * 101, "nul\x00"):
        response = await client.post(f"{API}/api-keys", json={"name": name}, headers=operator)
        assert_validation_error(response, "name")


async def test_every_operator_action_is_in_the_audit_log(
    client: httpx.AsyncClient, operator, receiver
) -> None:
    key = (await client.post(f"{API}/api-keys", json={"name": "k"}, headers=operator)).json()
    hook = (
        await client.post(
            f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=operator
        )
    ).json()
    by_key = {"X-API-Key": key["key"]}
    await client.patch(f"{API}/webhooks/{hook['id']}", json={"enabled": False}, headers=by_key)
    await client.post(f"{API}/webhooks/{hook['id']}/rotate-secret", headers=operator)
    await client.post(f"{API}/webhooks/{hook['id']}/test", headers=operator)
    await client.delete(f"{API}/webhooks/{hook['id']}", headers=operator)
    await client.delete(f"{API}/api-keys/{key['id']}", headers=operator)

    first = await client.get(f"{API}/admin/audit", params={"limit": 4}, headers=operator)
    assert first.status_code == 200
    page = first.json()
    assert page["next_cursor"]
    rest = await client.get(
        f"{API}/admin/audit", params={"cursor": page["next_cursor"]}, headers=operator
    )
    entries = page["items"] + rest.json()["items"]
    assert rest.json()["next_cursor"] is None
    assert [entry["action"] for entry in entries] == [
        "api_key.deleted",
        "webhook.deleted",
        "webhook.tested",
        "webhook.secret_rotated",
        "webhook.updated",
        "webhook.created",
        "api_key.created",
    ]
    updated = entries[4]
    assert updated["actor"] == {"user_id": None, "api_key_id": key["id"], "address": "127.0.0.1"}
    assert updated["target"] == f"webhook:{hook['id']} (enabled)"
    assert entries[0]["actor"]["api_key_id"] is None
    assert entries[0]["actor"]["user_id"] is not None
    bad = await client.get(f"{API}/admin/audit", params={"cursor": "nope"}, headers=operator)
    assert_validation_error(bad, "cursor")


async def test_failed_jobs_are_visible_to_operators(
    client: httpx.AsyncClient, core, operator
) -> None:
    from core.jobs.worker import GiveUp

    async def hopeless(job) -> None:
        raise GiveUp("the chat is gone")

    await core.jobs.enqueue("test.kind", {"secret": "not shown"})
    await core.jobs.enqueue("test.kind", {})
    await core.worker({"test.kind": hopeless}).run_due()
    await core.jobs.enqueue("test.kind", {})

    failed = await client.get(f"{API}/admin/jobs", params={"status": "failed"}, headers=operator)
    assert failed.status_code == 200
    items = failed.json()["items"]
    assert [item["last_error"] for item in items] == ["the chat is gone"] * 2
    assert all("payload" not in item for item in items)
    everything = await client.get(f"{API}/admin/jobs", params={"limit": 2}, headers=operator)
    assert [item["status"] for item in everything.json()["items"]] == ["queued", "failed"]
    assert everything.json()["next_cursor"]
    assert_validation_error(
        await client.get(f"{API}/admin/jobs", params={"status": "lost"}, headers=operator)
    )
