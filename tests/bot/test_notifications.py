"""Chat notifications: jobs the bot process sends, for referrals from chat or the API."""

from __future__ import annotations

import datetime as dt

from aiogram import Bot

from bot.notifier import Notifier
from core.container import Core
from core.infra import clock
from core.infra.db import database
from core.jobs.worker import Worker
from core.telegram.service import TELEGRAM_MESSAGE
from tests.bot.conftest import Harness, Person
from tests.bot.fake_telegram import FakeTelegram
from tests.conftest import API
from tests.jobs import chat_messages

# The default JOB_RETRY_SCHEDULE: pauses of 5, 30, 120, 600 and 1800 s, six attempts.
ATTEMPTS = 6


async def _referrer(harness: Harness, core: Core, lang: str = "en") -> tuple[Person, str]:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    code = await core.referrals.create_code(
        owner=await bob.account(), expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    return bob, code.code


async def test_a_referral_through_the_api_is_announced_in_chat(
    harness: Harness, core: Core, client, fake: FakeTelegram, bot: Bot
) -> None:
    _, code = await _referrer(harness, core, lang="ru")
    response = await client.post(
        f"{API}/auth/register",
        json={
            "email": "zed@example.com",
            "password": "long enough pw",
            "full_name": "Zed",
            "referral_code": code,
        },
    )
    assert response.status_code == 201

    # the worker as it runs in the bot process, polling the queue the API wrote to
    worker = core.worker({TELEGRAM_MESSAGE: Notifier(bot=bot, core=core).send})
    worker.poll_seconds = 0.05
    worker.start()
    try:
        note = await fake.wait_for(lambda c: c.chat_id == 202 and "Zed" in c.text)
    finally:
        await worker.stop()
    assert note.text == "По вашему коду присоединился новый участник — Zed. Теперь у вас 1 реферал."
    (row,) = await chat_messages()
    assert row.status == "succeeded"
    assert row.attempts == 1


async def test_each_announcement_counts_the_referrals_as_of_its_own(
    harness: Harness, core: Core, client
) -> None:
    """The count is the one the sign-up's claim made: a later sign-up, queued before the
    first message goes, does not raise it."""
    _, code = await _referrer(harness, core)
    for n in range(3):
        response = await client.post(
            f"{API}/auth/register",
            json={
                "email": f"r{n}@example.com",
                "password": "long enough pw",
                "referral_code": code,
            },
        )
        assert response.status_code == 201
    assert [job.payload["referral_count"] for job in await chat_messages()] == [1, 2, 3]


async def test_the_api_process_never_sends_chat_messages(core: Core) -> None:
    """Its worker (and `make worker`'s) has no chat-message kind: only the bot token does."""
    assert TELEGRAM_MESSAGE not in core.worker().kinds


async def test_failures_are_retried_on_the_schedule_then_kept_as_failed(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    fake.broken.add(202)
    before = len(fake.calls)

    def tries() -> int:
        return len([c for c in fake.calls[before:] if c.chat_id == 202])

    assert await notifier.run_due() == 1
    assert tries() == 1
    assert await notifier.run_due() == 0
    assert tries() == 1  # paused, not hammered
    later = dt.timedelta()
    for _ in range(10):
        later += dt.timedelta(hours=1)
        with clock.shift(later):
            await notifier.run_due()
    assert tries() == ATTEMPTS
    (row,) = await chat_messages()
    assert row.status == "failed"
    assert row.attempts == ATTEMPTS
    assert "Internal Server Error" in (row.last_error or "")


async def test_a_passing_failure_is_delivered_later(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    fake.broken.add(202)
    await notifier.run_due()
    fake.broken.clear()
    (row,) = await chat_messages()
    assert row.status == "queued"
    assert 4 < (row.run_at - clock.utcnow()).total_seconds() <= 5  # the first pause

    with clock.shift(dt.timedelta(seconds=3)):
        assert await notifier.run_due() == 0
    with clock.shift(dt.timedelta(seconds=6)):
        assert await notifier.run_due() == 1

    (row,) = await chat_messages()
    assert row.status == "succeeded"
    assert row.attempts == 2
    assert fake.sent_to(202)[-1].text == "Ann joined with your code; you now have 1 referral."


async def test_a_garbled_answer_counts_as_a_failed_attempt(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker
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
            await notifier.run_due()

    assert len([c for c in fake.calls[before:] if c.chat_id == 202]) == ATTEMPTS
    (row,) = await chat_messages()
    assert row.status == "failed"


async def test_messages_waiting_out_a_pause_do_not_hold_up_a_new_one(
    harness: Harness, core: Core, bot: Bot, fake: FakeTelegram, notifier: Worker
) -> None:
    _, code = await _referrer(harness, core)
    await harness.person(101, "Ann").send(f"/start {code}")
    await harness.person(102, "Cid").send(f"/start {code}")
    fake.broken.add(202)
    notifier.concurrency = 2
    assert await notifier.run_due() == 2  # both of Bob's messages now wait

    eve = harness.person(303, "Eve")
    await eve.send("/start")
    eve_code = await core.referrals.create_code(
        owner=await eve.account(), expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    await harness.person(104, "Dan").send(f"/start {eve_code.code}")

    assert await notifier.run_due() == 1
    assert fake.sent_to(303)[-1].text == "Dan joined with your code; you now have 1 referral."
    waiting = [row for row in await chat_messages() if row.status == "queued"]
    assert len(waiting) == 2
    assert all(row.attempts == 1 for row in waiting)


async def test_superusers_in_chat_hear_of_a_failing_webhook_in_their_language(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker
) -> None:
    from core.telegram.service import TelegramService
    from core.users.models import User

    root = harness.person(404, "Root", lang="ru")
    await root.send("/start")
    account = await root.account()
    await User.objects.filter(id=account.id).update(is_superuser=True)
    values = {"endpoint_id": 1, "url": "https://shop.example.com/hooks", "limit": 20}
    async with database.transaction():
        await TelegramService.notify(
            jobs=core.jobs,
            recipient_id=account.id,
            message="webhook_failing",
            failures=10,
            **values,
        )
        await TelegramService.notify(
            jobs=core.jobs,
            recipient_id=account.id,
            message="webhook_disabled",
            failures=20,
            **values,
        )
    assert await notifier.run_due() == 2
    texts = [c.text for c in fake.calls if c.chat_id == 404][-2:]
    assert sorted(texts) == sorted(
        [
            "Вебхук https://shop.example.com/hooks: подряд не доставлено 10. При 20 он будет "
            "отключён.",
            "Вебхук https://shop.example.com/hooks отключён после 20 недоставленных подряд. "
            "Исправьте приёмник и включите его снова в консоли.",
        ]
    )
