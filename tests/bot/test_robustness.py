"""Anything a user can send gets a polite answer and leaves the database consistent."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from bot.app import DEFAULT_RATE, create_dispatcher
from core.container import Core
from core.infra import clock
from core.referrals.models import ReferralCode
from core.users.models import User
from tests.bot.conftest import Harness, t
from tests.redis_server import free_port

ODD_PAYLOADS = [
    "A" * 64,
    "a" * 33,
    "abc",
    "-_-_",
    "%00",
    "<script>alert(1)</script>",
    "код",
    "💥💥💥",
    "two words",
    "link",
    "start=x&y=1",
]


@pytest.mark.parametrize("payload", ODD_PAYLOADS)
async def test_odd_start_payloads_from_a_new_user(harness: Harness, payload: str) -> None:
    ann = harness.person(101, "Ann")

    replies = await ann.send(f"/start {payload}")

    assert "This referral code does not exist." in replies.last.text
    assert replies.last.buttons[0]["text"] == "Continue without a code"
    assert await User.objects.count() == 0


async def test_odd_start_payloads_from_a_known_user(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send("/start")
    for payload in ODD_PAYLOADS:
        replies = await ann.send(f"/start {payload}")
        assert replies.last.text == t(
            "You are already registered. A referrer is set only when an account is created.", lang
        )
    assert await User.objects.count() == 1


async def test_unknown_commands_and_other_messages(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    help_line = t("/help — this message", lang)
    for text in ("/frobnicate", "/start@some_other_bot", "/CODE", "/" + "x" * 300):
        replies = await ann.send(text)
        assert t("I do not know that command.", lang) in replies.last.text, text
        assert help_line in replies.last.text
    for content in (
        {"text": "hello there"},
        {"text": "x" * 4096},
        {"location": {"latitude": 1.0, "longitude": 2.0}},
        {"contact": {"phone_number": "+100", "first_name": "X"}},
        {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]},
    ):
        replies = await ann.send(**content)
        assert help_line in replies.last.text, content
    assert await User.objects.count() == 0  # talking is not signing up


async def test_help_and_menu_in_both_languages(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    for text in ("/help", t("Help", lang)):
        replies = await ann.send(text)
        for line in (
            "/code — your code, its link and QR code",
            "/referrals — people who joined with your code",
        ):
            assert t(line, lang) in replies.last.text
    if lang == "ru":
        assert "Я храню ваш реферальный код" in replies.last.text
    # a keyboard left over in the other language still works
    other = "Мой код" if lang == "en" else "My code"
    assert (await ann.send(other)).last.text == t("You have no active referral code.", lang)


async def test_names_are_shown_as_text_not_markup(harness: Harness) -> None:
    eve = harness.person(101, "<b>Eve</b> & co")

    replies = await eve.send("/start")

    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in replies.last.text


FORGED = [
    "",
    "garbage",
    "code",
    "code:explode:x",
    "code:delete",
    "code:delete:NotMyCode1",
    "code:confirm:NotMyCode1",
    "code:delete:a:b",
    "expiry:abc",
    "expiry:7",  # a real-looking button outside the dialog
    "refs",
    "start:other",
    "x" * 64,
]


@pytest.mark.parametrize("data", FORGED)
async def test_forged_and_stale_buttons(harness: Harness, core: Core, data: str) -> None:
    ann = harness.person(101, "Ann")
    card = (await (await _with_code(harness, core)).send("/code")).last

    replies = await ann.press(card, data=data)

    assert replies.answers, f"no answer to {data!r}"
    assert "Something went wrong" not in replies.text
    # Bob's code is untouched, and nothing was created for Ann by a button of someone else
    assert await ReferralCode.objects.filter(closed_at=None).count() == 1
    assert await ReferralCode.objects.count() == 1


async def _with_code(harness: Harness, core: Core):
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    await core.referrals.create_code(
        owner=await bob.account(), expires_at=clock.utcnow() + dt.timedelta(days=3)
    )
    return bob


async def test_someone_elses_delete_button_does_nothing(harness: Harness, core: Core) -> None:
    bob = await _with_code(harness, core)
    card = (await bob.send("/code")).last
    eve = harness.person(303, "Eve")
    await eve.send("/start")

    asked = await eve.press(card, data=card.button("Delete")["callback_data"])
    confirmed = await eve.press(
        card, data=card.button("Delete")["callback_data"].replace("delete", "confirm")
    )

    assert asked.text == confirmed.text.split("\n")[0] == "This button is out of date."
    assert await ReferralCode.objects.filter(closed_at=None).count() == 1


async def test_forged_expiry_in_the_dialog(harness: Harness) -> None:
    ann = harness.person(101, "Ann")
    await ann.send("/start")
    question = (await ann.send("/newcode")).last
    for data in ("expiry:0", "expiry:-1", "expiry:9999"):
        replies = await ann.press(question, data=data)
        (answer,) = replies.answers
        assert answer.params.get("show_alert") in (True, "true")
        assert "days" in answer.params["text"]
    assert await ReferralCode.objects.count() == 0
    assert (await ann.press(question, "30 days")).last.method == "sendPhoto"


async def test_a_button_on_a_message_too_old_to_edit(harness: Harness, core: Core) -> None:
    bob = await _with_code(harness, core)
    old = {"chat": {"id": 202, "type": "private"}, "message_id": 1, "date": 0}

    replies = await bob.press(old, data="refs:10")

    assert replies.answers
    assert replies.last.text == "No one has joined with your code yet."


async def test_an_unexpected_failure_is_logged_and_answered(
    harness: Harness, caplog: pytest.LogCaptureFixture, lang: str
) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send("/start")
    harness.fake.broken_methods.add("sendPhoto")

    with caplog.at_level(logging.ERROR, logger="bot"):
        replies = await ann.send("/newcode 7")

    assert replies.last.text == t("Something went wrong; please try again.", lang)
    assert any("failed" in record.message for record in caplog.records)
    harness.fake.broken_methods.clear()
    # the code was created before the picture failed: it is there, once
    assert (await ann.send("/code")).last.method == "sendPhoto"
    assert await ReferralCode.objects.count() == 1


async def test_flood_is_throttled_per_user(strict_harness: Harness) -> None:
    harness = strict_harness
    ann = harness.person(101, "Ann")
    bob = harness.person(202, "Bob", lang="ru")
    limit = DEFAULT_RATE.count
    # Start at the top of a throttling window: the flood must not straddle two of them.
    to_next_window = DEFAULT_RATE.seconds - clock.timestamp() % DEFAULT_RATE.seconds

    with clock.shift(dt.timedelta(seconds=to_next_window + 0.01)):
        floods = [await ann.send("/help") for _ in range(30)]
        answered = [r for r in floods if r.sent]
        assert len(answered) == limit + 1
        assert answered[-1].last.text == "Too many messages; please wait a few seconds."
        assert all(not r.sent for r in floods[limit + 1 :])

        # someone else is not affected
        assert "/help" in (await bob.send("/help")).last.text
        # a flooded button still gets its spinner stopped
        pressed = await ann.press(
            {"chat": {"id": 101, "type": "private"}, "message_id": 5, "date": 0}, data="x"
        )
        assert pressed.answers
        assert pressed.answers[0].params["text"] == "Too many messages; please wait a few seconds."

    with clock.shift(dt.timedelta(seconds=to_next_window + 10)):
        assert "/help" in (await ann.send("/help")).last.text


def _in_group(sender: dict, text: str, **extra: object) -> dict:
    message: dict = {
        "message_id": 7,
        "date": 0,
        "chat": {"id": -1001, "type": "supergroup", "title": "Friends"},
        "from": sender,
        "text": text,
        **extra,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"message": message}


async def test_groups_are_pointed_to_a_private_chat(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    anonymous_admin = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
    private_only = "I work in a private chat only: please write to me directly."

    for sender, text, said_in in [
        (ann.user, "/start", lang),
        (ann.user, "/start SomeCode1", lang),
        (ann.user, "/newcode 7", lang),
        (anonymous_admin, "/code", "en"),  # no language, and no person behind it
        (anonymous_admin, "/referrals", "en"),
    ]:
        calls = await harness.feed(_in_group(sender, text))
        (reply,) = [c for c in calls if c.method == "sendMessage"]
        assert reply.chat_id == -1001
        assert reply.text == t(private_only, said_in) + "\nhttps://t.me/referral_test_bot"

    chatter = await harness.feed(_in_group(ann.user, "hello everyone"))
    assert chatter == []  # group talk is not for the bot
    assert await User.objects.count() == 0
    assert await ReferralCode.objects.count() == 0

    # in private, the same person is served as usual
    assert "Ann" in (await ann.send("/start")).last.text


async def test_no_burst_across_a_window_edge(strict_harness: Harness) -> None:
    """A flood split over what would be two fixed windows passes no more than one burst."""
    ann = strict_harness.person(101, "Ann")
    to_next_window = DEFAULT_RATE.seconds - clock.timestamp() % DEFAULT_RATE.seconds
    with clock.shift(dt.timedelta(seconds=to_next_window - 0.05)):
        before = [await ann.send("/help") for _ in range(10)]
    with clock.shift(dt.timedelta(seconds=to_next_window + 0.05)):
        after = [await ann.send("/help") for _ in range(10)]
    handled = [r for r in before + after if r.sent and "/help" in r.last.text]
    assert len(handled) <= DEFAULT_RATE.count + 1


async def test_the_bot_answers_with_redis_unreachable(core: Core, bot: Any, fake: Any) -> None:
    """Dialog state and throttling fall back to memory; users notice nothing."""
    dispatcher = create_dispatcher(core, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    harness = Harness(dispatcher, bot, fake)
    try:
        ann = harness.person(101, "Ann")
        assert "Your account is ready" in (await ann.send("/start")).last.text
        asked = await ann.send("/newcode")
        assert "For how long should the code work?" in asked.last.text
        created = await ann.send("7")  # answers the question kept in memory
        assert "Your new code is ready." in created.text
        assert "Something went wrong" not in asked.text + created.text
    finally:
        await dispatcher.emit_shutdown()


async def test_a_reply_telegram_holds_back_is_sent_after_the_wait(
    harness: Harness, fake: Any
) -> None:
    ann = harness.person(101, "Ann")
    fake.flood_waits["sendMessage"] = 1
    replies = await ann.send("/start")
    assert "Your account is ready" in replies.last.text
    assert "Something went wrong" not in replies.text
