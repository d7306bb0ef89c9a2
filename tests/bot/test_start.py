"""/start: sign-up in chat, deep links with every kind of code, the referrer's notification."""

from __future__ import annotations

import datetime as dt

from core.container import Core
from core.infra import clock
from core.jobs.worker import Worker
from core.users.models import User
from tests.bot.conftest import Harness, t, tn
from tests.bot.fake_telegram import FakeTelegram
from tests.jobs import chat_messages

MENU = {
    "en": ["My code", "Create", "Referrals", "My stats", "Help"],
    "ru": ["Мой код", "Создать", "Рефералы", "Моя статистика", "Помощь"],
}


async def _code_of(core: Core, user: User, *, days: int = 30, max_uses: int | None = None) -> str:
    code = await core.referrals.create_code(
        owner=user, expires_at=clock.utcnow() + dt.timedelta(days=days), max_uses=max_uses
    )
    return code.code


async def test_start_creates_the_account_and_shows_the_menu(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang, last_name="Lee", username="ann_lee")

    replies = await ann.send("/start")

    assert t("Welcome, {name}! Your account is ready.", lang, name="Ann Lee") in replies.last.text
    assert replies.last.keyboard == MENU[lang]
    account = await ann.account()
    assert account is not None
    assert (account.full_name, account.telegram_username, account.language_code) == (
        "Ann Lee",
        "ann_lee",
        lang,
    )
    assert account.referrer is None
    assert account.email is None


async def test_start_again_is_the_menu_for_a_known_user(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send("/start")

    replies = await ann.send("/start")

    assert replies.last.text == t("Welcome back, {name}!", lang, name="Ann")
    assert replies.last.keyboard == MENU[lang]
    assert await User.objects.filter(telegram_id=101).count() == 1


async def test_deep_link_registers_a_referral_and_notifies_the_referrer(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker, lang: str
) -> None:
    referrer_lang = "ru" if lang == "en" else "en"
    bob = harness.person(202, "Bob", lang=referrer_lang)
    await bob.send("/start")
    code = await _code_of(core, await bob.account())
    ann = harness.person(101, "Ann", lang=lang)

    replies = await ann.send(f"/start {code}")

    assert (
        t(
            "Welcome, {name}! You joined via {referrer}'s invitation.",
            lang,
            name="Ann",
            referrer="Bob",
        )
        in replies.last.text
    )
    ann_account = await ann.account()
    assert ann_account.referrer.id == (await bob.account()).id
    assert ann_account.referral_code == code

    assert await notifier.run_due() == 1
    (note,) = fake.sent_to(202)[-1:]
    assert note.text == tn(
        "{name} joined with your code; you now have {count} referral.",
        "{name} joined with your code; you now have {count} referrals.",
        1,
        referrer_lang,
        name="Ann",
        count=1,
    )
    assert await notifier.run_due() == 0  # sent once

    carl = harness.person(303, "Carl", lang=lang)
    await carl.send(f"/start {code}")
    await notifier.run_due()
    assert fake.sent_to(202)[-1].text == tn(
        "{name} joined with your code; you now have {count} referral.",
        "{name} joined with your code; you now have {count} referrals.",
        2,
        referrer_lang,
        name="Carl",
        count=2,
    )


async def _assert_refused(harness: Harness, payload: str, message: str, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    replies = await ann.send(f"/start {payload}")
    assert t(message, lang) in replies.last.text
    assert t("You can still join without a code.", lang) in replies.last.text
    assert await ann.account() is None  # nothing created until they choose

    refusal = replies.last
    replies = await ann.press(refusal, t("Continue without a code", lang))

    assert t("Welcome, {name}! Your account is ready.", lang, name="Ann") in replies.last.text
    account = await ann.account()
    assert account is not None
    assert account.referrer is None
    # the button is gone; pressing an old copy again does no harm
    assert harness.fake.messages[(101, refusal.result["message_id"])].get("reply_markup") is None
    again = await ann.press(refusal, t("Continue without a code", lang))
    assert t("Welcome back, {name}!", lang, name="Ann") in again.text
    assert await User.objects.filter(telegram_id=101).count() == 1


async def test_unknown_code(harness: Harness, lang: str) -> None:
    await _assert_refused(harness, "NoSuchCode1", "This referral code does not exist.", lang)


async def test_expired_code(harness: Harness, core: Core, lang: str) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    code = await _code_of(core, await bob.account(), days=1)
    with clock.shift(dt.timedelta(days=2)):
        await _assert_refused(harness, code, "This referral code has expired.", lang)


async def test_deleted_code(harness: Harness, core: Core, lang: str) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    code = await _code_of(core, await bob.account())
    await core.referrals.delete_active_code(owner=await bob.account())
    await _assert_refused(harness, code, "This referral code was deleted by its owner.", lang)


async def test_a_deleted_code_past_its_expiry_is_still_called_deleted(
    harness: Harness, core: Core
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    code = await _code_of(core, await bob.account(), days=1)
    await core.referrals.delete_active_code(owner=await bob.account())
    expired = await _code_of(core, await bob.account(), days=1)
    with clock.shift(dt.timedelta(days=2)):
        await bob.send("/newcode 7")  # retires the expired code: closed, but not deleted
        ann = harness.person(101, "Ann")
        assert "was deleted by its owner" in (await ann.send(f"/start {code}")).last.text
        assert "has expired." in (await ann.send(f"/start {expired}")).last.text


async def test_each_refusal_says_which(harness: Harness, core: Core, lang: str) -> None:
    """Unknown, expired, deleted and used-up codes each get their own sentence."""
    reasons = [
        "This referral code does not exist.",
        "This referral code has expired.",
        "This referral code was deleted by its owner.",
        "This referral code has already been used as many times as allowed.",
    ]
    assert len({t(reason, lang) for reason in reasons}) == len(reasons)


async def test_exhausted_code(harness: Harness, core: Core, lang: str) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    code = await _code_of(core, await bob.account(), max_uses=1)
    await harness.person(303, "Carl").send(f"/start {code}")
    await _assert_refused(
        harness, code, "This referral code has already been used as many times as allowed.", lang
    )


async def test_own_code(harness: Harness, core: Core, lang: str) -> None:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    code = await _code_of(core, await bob.account())

    replies = await bob.send(f"/start {code}")

    assert replies.last.text == t(
        "This is your own referral code: share it with friends instead.", lang
    )
    assert (await bob.account()).referrer is None


async def test_known_user_keeps_their_referrer(harness: Harness, core: Core, lang: str) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    code = await _code_of(core, await bob.account())
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send("/start")

    replies = await ann.send(f"/start {code}")

    assert replies.last.text == t(
        "You are already registered. A referrer is set only when an account is created.", lang
    )
    assert (await ann.account()).referrer is None
    assert await chat_messages() == []


async def test_blocked_referrer_does_not_stop_the_sign_up(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    code = await _code_of(core, await bob.account())
    fake.blocked.add(202)
    ann = harness.person(101, "Ann")

    replies = await ann.send(f"/start {code}")

    assert "Bob" in replies.last.text
    assert (await ann.account()).referrer is not None
    assert await notifier.run_due() == 1
    (row,) = await chat_messages()
    assert row.status == "failed"
    assert row.finished_at is not None
    assert row.attempts == 1
    assert "blocked" in (row.last_error or "")
    # given up for good: later rounds do not knock again
    tries = len([c for c in fake.calls if c.chat_id == 202])
    with clock.shift(dt.timedelta(days=1)):
        assert await notifier.run_due() == 0
    assert len([c for c in fake.calls if c.chat_id == 202]) == tries


async def test_names_from_telegram_lose_control_and_direction_characters(
    harness: Harness,
) -> None:
    eve = harness.person(909, "Eve\u202e", last_name="Lee\n\x07Smith")
    await eve.send("/start")
    account = await eve.account()
    assert account is not None
    assert account.full_name == "Eve Lee Smith"


async def test_a_referrer_without_a_name_is_a_friend_never_their_email(
    harness: Harness, core: Core, lang: str
) -> None:
    owner = await core.accounts.sign_up(email="john.smith.private@example.com", password="x" * 12)
    code = await _code_of(core, owner)
    ann = harness.person(101, "Ann", lang=lang)

    replies = await ann.send(f"/start {code}")

    assert (
        t("Welcome, {name}! You joined via a friend's invitation.", lang, name="Ann")
        in replies.last.text
    )
    assert "john" not in replies.text.lower()
