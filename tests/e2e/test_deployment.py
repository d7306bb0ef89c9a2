"""The deployment of the compose file, measured: two API processes (WEB_CONCURRENCY=2), two job
workers and two bot processes on one PostgreSQL and Redis, under mixed load (lookups,
sign-ups with codes, conversions and their retries, review decisions, webhook fan-out to a
receiver, chat messages to the fake Bot API), with one worker and one bot SIGKILLed in the
middle. Afterwards every invariant holds, every event arrived, and the repeats are at most what
was in flight."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
from typing import IO

import httpx
import pytest
import sqlalchemy as sa

from core.container import Core
from core.infra import db
from tests.api.support import ahead
from tests.bot.fake_telegram import TOKEN, FakeTelegram
from tests.conftest import BACKEND, PASSWORD, ROOT, SERVERS
from tests.e2e.conftest import Server, attach_telegram, running
from tests.integrations.conftest import eventually
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.skipif(
    BACKEND not in SERVERS,
    reason="several processes share a database server and Redis (make test-services, make "
    "test-mariadb); SQLite's one writer is the one-process embedded default",
)

API = "/api/v1"
REFERRERS = 8
SIGNUPS = 48
CONCURRENCY = 4  # each worker's JOB_CONCURRENCY: at most this many in flight when it dies
QUICK = {
    "JOB_POLL_SECONDS": "0.2",
    "JOB_LEASE_SECONDS": "3",
    "JOB_CONCURRENCY": str(CONCURRENCY),
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    "SMTP_TIMEOUT_SECONDS": "1",
    "INTEGRATIONS_TIMEOUT_SECONDS": "0.5",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "JOBS_IN_PROCESS": "false",
    "RATE_LIMIT_ENABLED": "false",
}


class Process:
    """`python -m <module>` with the test environment and `env`."""

    def __init__(self, module: str, **env: str) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self._output = ""
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter)
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**os.environ, **QUICK, **env},
            stdout=self._log,
            stderr=self._log,
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        if self._log.closed:
            return self._output
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._output = self.output()
        self._log.close()
        return self._output


async def _scalar(sql: str) -> int:
    async with db.database.connection() as connection:
        return int((await connection.execute(sa.text(sql))).scalar() or 0)


async def _rows(sql: str) -> list:
    async with db.database.connection() as connection:
        return list((await connection.execute(sa.text(sql))).all())


async def test_two_apis_two_workers_two_bots_under_load_with_deaths(core: Core) -> None:
    fake = FakeTelegram()
    await fake.start()
    receiver = Receiver()
    await receiver.start()
    api = Server(WEB_CONCURRENCY="2", TELEGRAM_BOT_USERNAME="referral_test_bot", **QUICK)
    processes: list[Process] = []
    try:
        with running(api):
            processes += [Process("core.jobs") for _ in range(2)]
            bot_env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": fake.url}
            processes += [Process("bot", **bot_env) for _ in range(2)]
            workers, bots = processes[:2], processes[2:]
            await _all_started(fake)
            async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
                await _load(http, receiver, workers, bots)
            outputs = [process.stop() for process in processes]
    finally:
        for process in processes:
            process.stop()
        await receiver.stop()
        await fake.stop()
    for output in outputs:
        assert "Traceback" not in output, output
    await _check_invariants(receiver, fake)


async def _all_started(fake: FakeTelegram) -> None:
    """Both workers listen and both bots poll (a bot migrates first): the load starts on a
    deployment that is up, not on one still taking its start-up locks."""

    async def listening() -> bool:
        if BACKEND == "mariadb":  # no LISTEN: each polls the queue on its own connection
            sessions = "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE()"
            return await _scalar(sessions) >= 4 + 1  # and this test's own
        return (
            await _scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %jobs_enqueued%'"
            )
            >= 4  # two workers and two bots (the bots run a worker of chat messages)
        )

    await eventually(listening, within=60)

    async def polling() -> bool:  # a bot polls once it has migrated and started its core
        return sum(call.method == "deleteWebhook" for call in fake.calls) >= 2

    await eventually(polling, within=60)


async def _load(
    http: httpx.AsyncClient, receiver: Receiver, workers: list[Process], bots: list[Process]
) -> None:
    root = await http.post(
        f"{API}/auth/register", json={"email": "ops@example.com", "password": PASSWORD}
    )
    assert root.status_code == 201, root.text
    await _promote(root.json()["id"])
    ops = await _bearer(http, "ops@example.com")
    key = (await http.post(f"{API}/api-keys", json={"name": "shop"}, headers=ops)).json()["key"]
    backend = {"X-API-Key": key}
    hook = await http.post(
        f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=backend
    )
    receiver.secrets.append(hook.json()["secret"])

    codes = []
    for n in range(REFERRERS):
        made = await http.post(
            f"{API}/auth/register",
            json={"email": f"ref{n}@example.com", "password": PASSWORD, "full_name": f"Ref {n}"},
        )
        assert made.status_code == 201, made.text
        await attach_telegram(made.json()["id"], 9000 + n)  # the referrer hears in chat
        headers = await _bearer(http, f"ref{n}@example.com")
        code = await http.post(
            f"{API}/referral-codes", json={"expires_at": ahead(days=30)}, headers=headers
        )
        codes.append(code.json()["code"])

    rng = random.Random(7)
    signed: list[dict] = []

    async def sign_up(n: int) -> None:
        # Every fourth one a throwaway address: held for review.
        domain = "mailinator.com" if n % 4 == 0 else "example.com"
        response = await http.post(
            f"{API}/auth/register",
            json={
                "email": f"user{n}@{domain}",
                "password": PASSWORD,
                "full_name": f"User {n}",
                "referral_code": rng.choice(codes),
            },
        )
        assert response.status_code == 201, response.text
        signed.append(response.json())

    async def lookups() -> None:
        for code in codes * 3:
            assert (await http.get(f"{API}/referral-codes/{code}")).status_code == 200
            assert (
                await http.get(f"{API}/referral-codes", params={"email": "nobody@x.io"})
            ).status_code == 404

    async def convert(user: dict) -> None:
        body = {
            "user_id": user["id"],
            "event": "purchase",
            "external_id": f"order-{user['id']}",
            "amount": 10,
        }
        answers = await asyncio.gather(
            *(http.post(f"{API}/conversions", json=body, headers=backend) for _ in range(3))
        )
        assert sorted(a.status_code for a in answers) == [200, 200, 201]

    # First half, then the deaths, then the rest.
    await asyncio.gather(lookups(), *(sign_up(n) for n in range(SIGNUPS // 2)))
    first = list(signed)
    await asyncio.gather(*(convert(user) for user in first))
    workers[0].kill()
    bots[0].kill()
    await asyncio.gather(lookups(), *(sign_up(n) for n in range(SIGNUPS // 2, SIGNUPS)))
    await asyncio.gather(*(convert(user) for user in signed[len(first) :]))

    held = (
        await http.get(
            f"{API}/admin/referrals",
            params={"status": "pending_review", "limit": 100},
            headers=backend,
        )
    ).json()["items"]
    assert len(held) == SIGNUPS // 4

    async def decide(item: dict, n: int) -> None:
        verbs = ("approve", "reject") if n % 2 else ("reject", "approve")
        answers = await asyncio.gather(
            *(
                http.post(f"{API}/admin/referrals/{item['id']}/{verb}", headers=backend)
                for verb in verbs
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409]

    await asyncio.gather(*(decide(item, n) for n, item in enumerate(held)))

    async def all_done() -> bool:
        waiting = await _scalar("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
        return waiting == 0

    await eventually(all_done, within=120)


async def _check_invariants(receiver: Receiver, fake: FakeTelegram) -> None:
    # Nothing failed: every job and every delivery succeeded.
    assert (
        await _rows("SELECT kind, status, last_error FROM jobs WHERE status != 'succeeded'") == []
    )
    assert await _scalar("SELECT count(*) FROM webhook_deliveries WHERE status != 'succeeded'") == 0

    # Counters equal the rows they count.
    assert (
        await _rows(
            """SELECT u.id FROM users u LEFT JOIN (SELECT referrer_id, count(*) AS n FROM referrals
           GROUP BY referrer_id) r ON r.referrer_id = u.id
           WHERE u.referral_count != coalesce(r.n, 0)"""
        )
        == []
    )
    assert (
        await _rows(
            """SELECT s.referrer_id FROM referrer_stats s LEFT JOIN (SELECT referrer_id,
             sum(CASE WHEN status = 'approved' THEN 1 ELSE 0 END) AS approved,
             sum(CASE WHEN status = 'pending_review' THEN 1 ELSE 0 END) AS pending,
             sum(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) AS rejected,
             sum(CASE WHEN qualified_at IS NOT NULL AND status != 'rejected' THEN 1 ELSE 0 END)
               AS qualified
           FROM referrals GROUP BY referrer_id) r ON r.referrer_id = s.referrer_id
           WHERE s.approved != r.approved OR s.pending_review != r.pending
              OR s.rejected != r.rejected OR s.qualified != r.qualified"""
        )
        == []
    )
    totals = (
        await _rows(
            "SELECT users, referred, pending_review, qualified, rewards_points FROM program_totals"
        )
    )[0]
    assert totals.users == await _scalar("SELECT count(*) FROM users")
    assert totals.referred == await _scalar("SELECT count(*) FROM referrals") == SIGNUPS
    assert totals.pending_review == 0
    assert totals.qualified == await _scalar(
        "SELECT count(*) FROM referrals WHERE qualified_at IS NOT NULL AND status != 'rejected'"
    )
    assert totals.rewards_points == await _scalar("SELECT coalesce(sum(points), 0) FROM rewards")

    # One reward per qualification, and balances equal their ledgers.
    assert (
        await _rows(
            "SELECT referral_id, reason FROM rewards WHERE referral_id IS NOT NULL "
            "GROUP BY referral_id, reason HAVING count(*) > 1"
        )
        == []
    )
    earned = await _scalar("SELECT count(*) FROM rewards WHERE reason = 'referral_qualified'")
    assert earned == await _scalar(
        "SELECT count(*) FROM referrals WHERE qualified_at IS NOT NULL AND status = 'approved'"
    )
    assert (
        await _rows(
            """SELECT b.user_id FROM reward_balances b JOIN (SELECT user_id, sum(points) AS total
           FROM rewards GROUP BY user_id) l ON l.user_id = b.user_id WHERE b.balance != l.total"""
        )
        == []
    )
    assert await _scalar("SELECT count(*) FROM conversions") == SIGNUPS

    # Every event arrived, signed; the repeats are at most what the dead worker had in flight.
    deliveries = await _scalar("SELECT count(*) FROM webhook_deliveries")
    ids = [item.message_id for item in receiver.received]
    assert len(set(ids)) == deliveries
    assert len(ids) - len(set(ids)) <= CONCURRENCY
    assert all(item.verified for item in receiver.received)

    # Every chat message was sent; the repeats are at most what the dead bot had in flight.
    chats = await _scalar("SELECT count(*) FROM jobs WHERE kind = 'telegram.message'")
    sent = [c for c in fake.calls if c.method == "sendMessage" and 9000 <= (c.chat_id or 0) < 9100]
    assert chats <= len(sent) <= chats + CONCURRENCY
    assert chats >= SIGNUPS  # a message per referral at least (and qualifications, decisions)


async def _bearer(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await http.post(f"{API}/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, (email, response.text)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _promote(user_id: int) -> None:
    from core.users.models import User

    await User.objects.filter(id=user_id).update(is_superuser=True)
