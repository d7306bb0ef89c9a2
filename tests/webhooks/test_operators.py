"""Operators: superuser tokens and API keys, and the audit log of what they do."""

from __future__ import annotations

import httpx

from core.operators.models import ApiKey
from tests.api.support import assert_problem, assert_validation_error
from tests.conftest import API
from tests.jobs import enqueue


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
    assert updated["actor"] == {
        "user_id": None,
        "api_key_id": key["id"],
        "address": "127.0.0.1",
        "label": f"key: #{key['id']} (deleted)",  # deleted by then; its id stays
    }
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

    await enqueue(core.jobs, "test.kind", {"secret": "not shown"})
    await enqueue(core.jobs, "test.kind", {})
    await core.worker({"test.kind": hopeless}).run_due()
    await enqueue(core.jobs, "test.kind", {})

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


async def test_operators_find_users_by_id_or_email_and_read_their_rewards(
    client: httpx.AsyncClient, operator, api_key, register
) -> None:
    ann = await register("ann@example.com", full_name="Ann")
    await register("anna_b@example.com")
    bob = await register("bob@example.com")
    url = f"{API}/admin/users"

    async def emails(**params) -> list[str]:
        response = await client.get(url, params=params, headers=api_key)
        assert response.status_code == 200, response.text
        return [item["email"] for item in response.json()["items"]]

    assert await emails(query="ann") == ["anna_b@example.com", "ann@example.com"]
    assert await emails(query="ANNA_") == ["anna_b@example.com"]  # _ is no wildcard
    assert await emails(query="%") == []
    assert await emails(query=str(bob["id"])) == ["bob@example.com"]
    assert await emails(query="99999999999") == []
    assert await emails(id=[ann["id"], bob["id"]]) == ["bob@example.com", "ann@example.com"]
    first = (await client.get(url, params={"limit": 2}, headers=api_key)).json()
    rest = await client.get(url, params={"cursor": first["next_cursor"]}, headers=api_key)
    assert len(first["items"]) + len(rest.json()["items"]) == 4  # the operator too

    await client.post(
        f"{API}/admin/users/{ann['id']}/rewards", json={"points": 7, "note": "hi"}, headers=api_key
    )
    rewards = (await client.get(f"{url}/{ann['id']}/rewards", headers=api_key)).json()
    assert (rewards["balance"], [r["points"] for r in rewards["items"]]) == (7, [7])
    assert_problem(
        await client.get(f"{url}/{2**40}/rewards", headers=api_key), 404, "user_not_found"
    )
    audit = (await client.get(f"{API}/admin/audit", headers=operator)).json()["items"]
    assert audit[0]["actor"]["label"] == "key: backend"


async def test_a_failed_job_is_retried_by_an_operator(
    client: httpx.AsyncClient, core, operator
) -> None:
    from core.jobs.models import Job

    job_id = await enqueue(core.jobs, "mail", {"purpose": "nothing"})
    await core.worker().run_due()  # no mailer here: it gives up at once
    assert (await Job.objects.get(id=job_id)).status == "failed"

    retried = await client.post(f"{API}/admin/jobs/{job_id}/retry", headers=operator)
    assert retried.status_code == 202
    job = await Job.objects.get(id=job_id)
    assert (job.status, job.attempts) == ("queued", 0)
    assert_problem(
        await client.post(f"{API}/admin/jobs/{job_id}/retry", headers=operator),
        409,
        "job_not_failed",
    )
    assert_problem(
        await client.post(f"{API}/admin/jobs/999999/retry", headers=operator), 404, "job_not_found"
    )
    hook_job = await enqueue(core.jobs, "webhook.delivery", {"delivery_id": 1})
    await Job.objects.filter(id=hook_job).update(status="failed")
    assert_problem(
        await client.post(f"{API}/admin/jobs/{hook_job}/retry", headers=operator),
        409,
        "job_not_retryable",
    )
    audit = (await client.get(f"{API}/admin/audit", headers=operator)).json()["items"]
    assert (audit[0]["action"], audit[0]["actor"]["label"]) == ("job.retried", "root@example.com")
