"""`make run` alone delivers webhooks: on the embedded default the API runs a worker itself."""

from __future__ import annotations

import httpx

from core.users.models import User
from tests.api.support import ahead
from tests.conftest import BACKEND, PASSWORD
from tests.e2e.conftest import Server, _execute, running
from tests.integrations.conftest import eventually
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


async def test_the_api_process_writes_the_landing_pages_link_opens() -> None:
    """Counted in memory, written by the process's own flush (every LINK_OPENS_FLUSH_SECONDS)."""
    server = Server(LINK_OPENS_FLUSH_SECONDS="0.2")
    with running(server):
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            await http.post(
                f"{API}/auth/register", json={"email": "lin@example.com", "password": PASSWORD}
            )
            token = await http.post(
                f"{API}/auth/token", data={"username": "lin@example.com", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            code = await http.post(
                f"{API}/referral-codes",
                json={"expires_at": ahead(days=30)},
                headers=headers,
            )
            assert code.status_code == 201, code.text
            for _ in range(3):  # one visitor: counted once in the window
                assert (await http.get(f"/r/{code.json()['code']}")).status_code == 200

            async def written() -> bool:
                stats = await http.get(f"{API}/users/me/referral-stats", headers=headers)
                return bool(stats.json()["link_opens"] == 1)

            await eventually(written, within=10)
