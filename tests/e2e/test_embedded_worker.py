"""`make run` alone delivers webhooks: on the embedded default the API runs a worker itself."""

from __future__ import annotations

import httpx

from core.users.models import User
from tests.conftest import BACKEND, PASSWORD
from tests.e2e.conftest import Server, _execute, running
from tests.webhooks.receiver import Receiver

API = "/api/v1"


async def test_the_api_process_delivers_webhooks_by_itself() -> None:
    receiver = Receiver()
    await receiver.start()
    # SQLite: the default ("auto") runs the worker; PostgreSQL needs it asked for.
    server = Server(
        JOBS_IN_PROCESS="auto" if BACKEND == "sqlite" else "true",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
    )
    try:
        with running(server):
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                root = await http.post(
                    f"{API}/auth/register", json={"email": "root@example.com", "password": PASSWORD}
                )
                users = User.ormar_config.table
                await _execute(
                    users.update().where(users.c.id == root.json()["id"]).values(is_superuser=True)
                )
                token = await http.post(
                    f"{API}/auth/token",
                    data={"username": "root@example.com", "password": PASSWORD},
                )
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                hook = await http.post(
                    f"{API}/webhooks",
                    json={"url": receiver.url, "events": ["user.created"]},
                    headers=headers,
                )
                assert hook.status_code == 201, hook.text
                receiver.secrets = [hook.json()["secret"]]

                ann = await http.post(
                    f"{API}/auth/register", json={"email": "ann@example.com", "password": PASSWORD}
                )
                assert ann.status_code == 201

                await receiver.wait_for(lambda got: len(got) == 1)
                (arrived,) = receiver.received
                assert arrived.verified
                assert arrived.payload["data"] == ann.json()
    finally:
        await receiver.stop()
