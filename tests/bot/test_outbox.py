"""The outbox: the bot process tells referrers about new referrals, from chat or the API."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiogram import Bot

from bot.outbox import OutboxPoller
from core import clock
from core.container import Core
from core.telegram.models import Notification
from tests.bot.conftest import Harness, Person
from tests.bot.fake_telegram import FakeTelegram
from tests.conftest import API


async def _referrer(harness: Harness, core: Core, lang: str = "en") -> tuple[Person, str]:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    code = await core.referrals.create_code(
        owner=await bob.account(), expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    return bob, code.code


async def test_a_referral_through_the_api_is_announced_in_chat(
    harness: Harness, core: Core, client, fake: FakeTelegram, outbox: OutboxPoller
) -> None:
    await _referrer(harness, core, lang="ru")
    response = await client.post(
        f"{API}/auth/register",
        json={
            "email": "zed@example.com",
            "password": "long enough pw",
            "full_name": "Zed",
            "referral_code": (
                await core.referrals.active_code(
                    owner_id=(await harness.person(202, "Bob").account()).id
                )
            ).code,
        },
    )
    assert response.status_code == 201

    # the poller as it runs in the bot process
    outbox.interval = 0.05
    task = asyncio.create_task(outbox.run())
    try:
        note = await fake.wait_for(lambda c: c.chat_id == 202 and "Zed" in c.text)
    finally:
        outbox.stop()
        await task
    assert note.text == "По вашему коду присоединился новый участник — Zed. Теперь у вас 1 реферал."
    (row,) = await Notification.objects.all()
    assert row.sent_at is not None
    assert row.failed_at is None


async def test_failures_are_retried_with_a_pause_and_a_limit(
    harness: Harness, core: Core, fake: FakeTelegram, outbox: OutboxPoller
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    fake.broken.add(202)
    before = len(fake.calls)

    def tries() -> int:
        return len([c for c in fake.calls[before:] if c.chat_id == 202])

    assert await outbox.deliver_pending() == 0
    assert tries() == 1
    await outbox.deliver_pending()
    assert tries() == 1  # paused, not hammered
    later = dt.timedelta()
    for _ in range(10):
        later += dt.timedelta(hours=1)
        with clock.shift(later):
            await outbox.deliver_pending()
    assert tries() == core.telegram.max_delivery_attempts
    (row,) = await Notification.objects.all()
    assert row.failed_at is not None
    assert row.sent_at is None
    assert row.attempts == core.telegram.max_delivery_attempts
    assert "Internal Server Error" in (row.last_error or "")


async def test_a_passing_failure_is_delivered_later(
    harness: Harness, core: Core, fake: FakeTelegram, outbox: OutboxPoller
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    fake.broken.add(202)
    await outbox.deliver_pending()
    fake.broken.clear()

    with clock.shift(dt.timedelta(minutes=5)):
        assert await outbox.deliver_pending() == 1

    (row,) = await Notification.objects.all()
    assert row.sent_at is not None
    assert row.attempts == 2
    assert fake.sent_to(202)[-1].text == "Ann joined with your code; you now have 1 referral."


async def test_a_garbled_answer_counts_as_a_failed_attempt(
    harness: Harness, core: Core, fake: FakeTelegram, outbox: OutboxPoller
) -> None:
    """Not a Telegram error at all (a proxy's HTML page): still tried a limited number of times."""
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    fake.garbled.add(202)
    before = len(fake.calls)

    later = dt.timedelta()
    for _ in range(10):
        later += dt.timedelta(hours=1)
        with clock.shift(later):
            assert await outbox.deliver_pending() == 0

    tries = [c for c in fake.calls[before:] if c.chat_id == 202]
    assert len(tries) == core.telegram.max_delivery_attempts
    (row,) = await Notification.objects.all()
    assert row.failed_at is not None
    assert row.attempts == core.telegram.max_delivery_attempts


async def test_a_pause_is_kept_across_a_restart(
    harness: Harness, core: Core, bot: Bot, fake: FakeTelegram, outbox: OutboxPoller
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    fake.broken.add(202)
    before = len(fake.calls)
    await outbox.deliver_pending()
    fake.broken.clear()
    (row,) = await Notification.objects.all()
    assert row.next_attempt_at is not None
    assert 50 < (row.next_attempt_at - clock.utcnow()).total_seconds() <= 60

    restarted = OutboxPoller(bot=bot, core=core, backoff=60)
    assert await restarted.deliver_pending() == 0
    with clock.shift(dt.timedelta(seconds=30)):
        assert await restarted.deliver_pending() == 0
    assert len([c for c in fake.calls[before:] if c.chat_id == 202]) == 1  # no second try yet

    with clock.shift(dt.timedelta(seconds=61)):
        assert await restarted.deliver_pending() == 1
    (row,) = await Notification.objects.all()
    assert row.sent_at is not None
    assert row.attempts == 2
    assert fake.sent_to(202)[-1].text == "Ann joined with your code; you now have 1 referral."


async def test_rows_waiting_out_a_pause_do_not_hold_up_a_new_one(
    harness: Harness, core: Core, bot: Bot, fake: FakeTelegram
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    await harness.person(102, "Cid").send(f"/start {code}")
    fake.broken.add(202)
    outbox = OutboxPoller(bot=bot, core=core, backoff=60, batch=2)
    assert await outbox.deliver_pending() == 0  # both of Bob's rows now wait

    eve = harness.person(303, "Eve")
    await eve.send("/start")
    eve_code = await core.referrals.create_code(
        owner=await eve.account(), expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    await harness.person(104, "Dan").send(f"/start {eve_code.code}")

    assert await outbox.deliver_pending() == 1
    assert fake.sent_to(303)[-1].text == "Dan joined with your code; you now have 1 referral."
    waiting = await Notification.objects.filter(sent_at=None).all()
    assert len(waiting) == 2
    assert all(row.attempts == 1 and row.failed_at is None for row in waiting)
