"""Growth inside Telegram (BOT.md v1.2), through the fake Bot API: invite links made once and
reused, joins attributed to the link's owner once, stays checked on the shared clock, join
requests decided by review, inline mode, and a chat where the bot may not invite."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time
from typing import Any

import pytest
from aiogram import Bot

from bot.app import create_dispatcher
from bot.chat_api import BotChatApi
from bot.growth import GROWTH_UPDATES, ChatUpdates, GrowthJobs
from bot.handlers.invites import INVITE_START
from bot.notifier import Notifier
from core.campaigns.service import Campaign
from core.container import Core
from core.infra import clock
from core.infra.settings import Settings
from core.operators.service import Operator
from core.program.items import LEFT, QUALIFIED
from core.referrals.tables import referrals
from core.telegram.service import TELEGRAM_MESSAGE
from core.telegram.tables import NOT_ADMIN, READY, UPDATES_KEPT_DAYS
from core.users.models import User
from tests.bot.conftest import LAX, Harness, Person, t, tn
from tests.bot.fake_telegram import FakeTelegram

OPERATOR = Operator()
CHAT = -1001234567890
TITLE = "Cooking club"
_updates = itertools.count(10_000)


async def _campaign(core: Core, **telegram: Any) -> Campaign:
    rules: dict[str, Any] = {
        "referrer_points": 100,
        "friend_points": 10,
        "telegram": {"chat_id": CHAT, "qualify_after_days": 7, **telegram},
    }
    return await core.campaigns.create(
        operator=OPERATOR, key="club", name="Club growth", rules=rules
    )


def _worker(core: Core, bot: Bot) -> Any:
    """The bot process's worker: chat messages and the campaign chats' jobs."""
    updates = ChatUpdates(core)
    return core.worker(
        {
            TELEGRAM_MESSAGE: Notifier(bot=bot, core=core).send,
            **GrowthJobs(bot=bot, core=core, updates=updates).handlers(),
        }
    )


async def _invite(person: Person) -> str:
    replies = await person.send("/invite")
    photo = [c for c in replies if c.method == "sendPhoto"][-1]
    assert photo.files.get("photo", b"").startswith(b"\x89PNG")  # the QR picture
    return str(photo.button(t("Open the chat", person.lang))["url"])


def _user(person_id: int, name: str, lang: str = "en") -> dict[str, Any]:
    return {"id": person_id, "is_bot": False, "first_name": name, "language_code": lang}


def _member_update(
    user: dict[str, Any], old: str, new: str, link: str | None = None, **extra: Any
) -> dict[str, Any]:
    update: dict[str, Any] = {
        "chat": {"id": CHAT, "type": "channel", "title": TITLE},
        "from": user,
        "date": int(time.time()),
        "old_chat_member": {"status": old, "user": user},
        "new_chat_member": {"status": new, "user": user},
    }
    if link is not None:
        update["invite_link"] = _link_object(link)
    return {"update_id": next(_updates), "chat_member": {**update, **extra}}


def _link_object(link: str, *, join_request: bool = False) -> dict[str, Any]:
    return {
        "invite_link": link,
        "creator": {"id": 1, "is_bot": True, "first_name": "bot"},
        "creates_join_request": join_request,
        "is_primary": False,
        "is_revoked": False,
    }


async def _join(
    harness: Harness, fake: FakeTelegram, user: dict[str, Any], link: str | None
) -> dict[str, Any]:
    fake.members[(CHAT, user["id"])] = "member"
    update = _member_update(user, "left", "member", link)
    await harness.feed(update)
    return update


async def _leave(harness: Harness, fake: FakeTelegram, user: dict[str, Any]) -> None:
    fake.members[(CHAT, user["id"])] = "left"
    await harness.feed(_member_update(user, "member", "left"))


async def _qualification(core: Core, telegram_id: int) -> str:
    account = await User.objects.get(telegram_id=telegram_id)
    page = await core.review.referral_list(status=None, limit=10, cursor=None)
    return next(item.qualification for item in page.items if item.id == account.id)


@pytest.fixture
async def club(core: Core, fake: FakeTelegram) -> Campaign:
    fake.add_chat(CHAT, TITLE)
    return await _campaign(core)


# -- the link ---------------------------------------------------------------------------


async def test_invite_makes_one_link_reuses_it_and_shares_it(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign, lang: str
) -> None:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")

    replies = await bob.send("/invite")
    photo = [c for c in replies if c.method == "sendPhoto"][-1]
    assert t("Your invitation to {chat}:", lang, chat=TITLE) in photo.text
    assert (
        tn(
            "Friends who join by this link and stay {days} day count as your referrals.",
            "Friends who join by this link and stay {days} days count as your referrals.",
            7,
            lang,
            days=7,
        )
        in photo.text
    )
    share = photo.button(t("Share", lang))
    assert share["switch_inline_query"] == ""  # sharing is an inline query: no copying
    link = photo.button(t("Open the chat", lang))["url"]
    (made,) = fake.calls_of("createChatInviteLink")
    code = await core.referrals.active_code(owner_id=(await bob.account()).id, campaign=club)
    assert code is not None  # made for the occasion, in the campaign
    assert made.params["name"] == code.code
    assert made.chat_id == CHAT

    assert await _invite(bob) == link  # the same link again: no second one made
    assert len(fake.calls_of("createChatInviteLink")) == 1

    # An administrator revoked it in Telegram: the next /invite makes a new one.
    fake.links[link]["revoked"] = True
    again = await _invite(bob)
    assert again != link
    assert len(fake.calls_of("createChatInviteLink")) == 2


async def test_the_menu_offers_the_chat_and_its_button_invites(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign, lang: str
) -> None:
    await _worker(core, bot).run_due()  # the campaign's change: the bot reads the chat's title
    bob = harness.person(202, "Bob", lang=lang)
    replies = await bob.send("/start")
    label = t("Invite to {chat}", lang, chat=TITLE)
    assert label in replies.last.keyboard
    replies = await bob.send(label)
    assert any(c.method == "sendPhoto" for c in replies)
    assert len(fake.calls_of("createChatInviteLink")) == 1


async def test_links_of_another_user_are_their_own(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    bob, eve = harness.person(202, "Bob"), harness.person(303, "Eve")
    await bob.send("/start")
    await eve.send("/start")
    assert await _invite(bob) != await _invite(eve)


# -- joins ------------------------------------------------------------------------------


async def test_a_join_by_a_link_is_a_referral_and_the_referrer_is_told(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign, lang: str
) -> None:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    link = await _invite(bob)

    await _join(harness, fake, _user(101, "Ann", lang), link)

    ann = await User.objects.get(telegram_id=101)
    assert ann.referrer.id == (await bob.account()).id
    assert ann.full_name == "Ann"
    row = (await core.review.referral_list(status=None, limit=10, cursor=None)).items[0]
    assert (row.id, row.qualification) == (ann.id, "pending")
    await _worker(core, bot).run_due()
    expected = tn(
        "{name} joined with your code; you now have {count} referral.",
        "{name} joined with your code; you now have {count} referrals.",
        1,
        lang,
        name="Ann",
        count=1,
    )
    await fake.wait_for(lambda c: c.chat_id == 202 and c.text == expected)


async def test_a_join_by_an_unknown_link_or_none_is_ignored(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    await _join(harness, fake, _user(101, "Ann"), "https://t.me/+someone-elses")
    await _join(harness, fake, _user(102, "Cy"), None)
    assert await User.objects.get_or_none(telegram_id=101) is None
    assert await User.objects.get_or_none(telegram_id=102) is None


async def test_a_redelivered_update_and_a_second_join_count_once(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    update = await _join(harness, fake, _user(101, "Ann"), link)
    await harness.feed(update)  # Telegram redelivers the same update_id
    await _leave(harness, fake, _user(101, "Ann"))
    eve = harness.person(303, "Eve")
    await eve.send("/start")
    await _join(harness, fake, _user(101, "Ann"), await _invite(eve))  # someone else's link

    assert (await bob.account()).referral_count == 1
    assert (await eve.account()).referral_count == 0
    ann = await User.objects.get(telegram_id=101)
    assert ann.referrer.id == (await bob.account()).id


async def test_someone_with_an_account_already_is_not_counted(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    bob, ann = harness.person(202, "Bob"), harness.person(101, "Ann")
    await bob.send("/start")
    await ann.send("/start")
    await _join(harness, fake, ann.user, await _invite(bob))
    assert (await bob.account()).referral_count == 0


async def test_two_bot_processes_seeing_one_update_make_one_referral(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign, settings: Settings, bot: Bot
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    other = create_dispatcher(core, rate=LAX, redis_url=settings.redis_url)
    try:
        fake.members[(CHAT, 101)] = "member"
        update = _member_update(_user(101, "Ann"), "left", "member", link)
        await asyncio.gather(
            harness.dp.feed_raw_update(bot, dict(update)),
            other.feed_raw_update(bot, dict(update)),
        )
    finally:
        await other.emit_shutdown()
    assert (await bob.account()).referral_count == 1
    assert await User.objects.filter(telegram_id=101).count() == 1


async def test_a_join_through_a_paused_campaigns_link_does_not_count_and_links_go(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    await core.campaigns.update(operator=OPERATOR, key="club", status="paused")

    await _join(harness, fake, _user(101, "Ann"), link)
    assert await User.objects.get_or_none(telegram_id=101) is None
    await _worker(core, bot).run_due()  # the campaign's change: the bot revokes its links
    assert fake.links[link]["revoked"] is True
    assert [c.params["invite_link"] for c in fake.calls_of("revokeChatInviteLink")] == [link]


# -- stays --------------------------------------------------------------------------------


async def test_a_friend_who_stays_the_wait_qualifies_the_referral(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign, lang: str
) -> None:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    await _join(harness, fake, _user(101, "Ann", lang), await _invite(bob))
    worker = _worker(core, bot)
    await worker.run_due()
    assert not fake.calls_of("getChatMember") or all(
        int(c.params["user_id"]) != 101 for c in fake.calls_of("getChatMember")
    )  # nobody is polled before the wait is over

    with clock.shift(dt.timedelta(days=7, minutes=1)):
        await worker.run_due()
    asked = [c for c in fake.calls_of("getChatMember") if int(c.params["user_id"]) == 101]
    assert len(asked) == 1  # one check, at its time
    assert await _qualification(core, 101) == QUALIFIED
    rewards = await core.rewards.page(user_id=(await bob.account()).id, limit=10, cursor=None)
    assert [r.points for r in rewards.items] == [100]
    expected = tn(
        "{name}'s referral qualified: +{points} point.",
        "{name}'s referral qualified: +{points} points.",
        100,
        lang,
        name="Ann",
        points=100,
    )
    await fake.wait_for(lambda c: c.chat_id == 202 and c.text == expected)

    await _leave(harness, fake, _user(101, "Ann", lang))  # leaving later takes nothing back
    assert await _qualification(core, 101) == QUALIFIED


async def test_a_friend_who_leaves_before_the_wait_earns_nothing_until_they_rejoin(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    ann = _user(101, "Ann")
    await _join(harness, fake, ann, link)
    worker = _worker(core, bot)
    with clock.shift(dt.timedelta(days=2)):
        await _leave(harness, fake, ann)
    assert await _qualification(core, 101) == LEFT
    with clock.shift(dt.timedelta(days=7, minutes=1)):
        await worker.run_due()  # the first join's check: gone, nothing granted
    assert await _qualification(core, 101) == LEFT
    bob_id = (await bob.account()).id
    assert (await core.rewards.page(user_id=bob_id, limit=10, cursor=None)).items == []

    with clock.shift(dt.timedelta(days=8)):
        await _join(harness, fake, ann, link)  # by the same link: the wait starts again
        assert await _qualification(core, 101) == "pending"
    with clock.shift(dt.timedelta(days=14)):
        await worker.run_due()  # the first check is stale, the second is not due
    assert await _qualification(core, 101) == "pending"
    with clock.shift(dt.timedelta(days=15, minutes=1)):
        await worker.run_due()
    assert await _qualification(core, 101) == QUALIFIED


async def test_a_friend_gone_when_checked_is_left(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign
) -> None:
    """A leave the bot never heard of (no update): the check at the wait's end finds it."""
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    await _join(harness, fake, _user(101, "Ann"), await _invite(bob))
    fake.members[(CHAT, 101)] = "left"
    with clock.shift(dt.timedelta(days=7, minutes=1)):
        await _worker(core, bot).run_due()
    assert await _qualification(core, 101) == LEFT
    account = await User.objects.get(telegram_id=101)
    row = await referrals_row(core, account.id)
    assert row.qualified_at is None
    assert row.left_at is not None


async def referrals_row(core: Core, referral_id: int) -> Any:
    from core.infra.db import database, execute

    async with database.connection() as connection:
        return (
            await execute(connection, referrals.select().where(referrals.c.id == referral_id))
        ).one()


async def test_no_wait_qualifies_at_the_join(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot
) -> None:
    fake.add_chat(CHAT, TITLE)
    await _campaign(core, qualify_after_days=0)
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    await _join(harness, fake, _user(101, "Ann"), await _invite(bob))
    await _worker(core, bot).run_due()
    assert await _qualification(core, 101) == QUALIFIED
    assert not [c for c in fake.calls_of("getChatMember") if int(c.params["user_id"]) == 101]


# -- join requests --------------------------------------------------------------------------


def _request(user: dict[str, Any], link: str) -> dict[str, Any]:
    return {
        "update_id": next(_updates),
        "chat_join_request": {
            "chat": {"id": CHAT, "type": "channel", "title": TITLE},
            "from": user,
            "user_chat_id": user["id"],
            "date": int(time.time()),
            "invite_link": _link_object(link, join_request=True),
        },
    }


async def test_join_requests_wait_for_review_and_follow_its_decision(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot
) -> None:
    fake.add_chat(CHAT, TITLE)
    await core.campaigns.create(
        operator=OPERATOR,
        key="club",
        name="Club growth",
        rules={
            "review": {"burst_limit": 1, "burst_seconds": 3600},  # the second one is held
            "telegram": {"chat_id": CHAT, "qualify_after_days": 7, "join_requests": True},
        },
    )
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    assert fake.links[link]["creates_join_request"] is True
    worker = _worker(core, bot)

    friends = {101: "Ann", 102: "Cy", 103: "Dee"}
    for person_id, name in friends.items():
        fake.members[(CHAT, person_id)] = "requested"
        await harness.feed(_request(_user(person_id, name), link))
    await worker.run_due()
    # The first needs no review: let in at once. The others wait for the operator.
    assert [int(c.params["user_id"]) for c in fake.calls_of("approveChatJoinRequest")] == [101]
    ids = {pid: (await User.objects.get(telegram_id=pid)).id for pid in friends}

    await core.review.decide(operator=OPERATOR, referral_id=ids[102], approve=True)
    await core.review.decide(operator=OPERATOR, referral_id=ids[103], approve=False)
    await worker.run_due()
    assert [int(c.params["user_id"]) for c in fake.calls_of("approveChatJoinRequest")] == [101, 102]
    assert [int(c.params["user_id"]) for c in fake.calls_of("declineChatJoinRequest")] == [103]

    # Approved, Cy joins: the wait starts then, and his stay qualifies him.
    await harness.feed(_member_update(_user(102, "Cy"), "left", "member", link))
    with clock.shift(dt.timedelta(days=7, minutes=1)):
        await worker.run_due()
    assert await _qualification(core, 102) == QUALIFIED


# -- inline mode ----------------------------------------------------------------------------


async def test_inline_mode_offers_the_invitation_and_starts_the_bot_for_strangers(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign, lang: str
) -> None:
    def query(person_id: int) -> dict[str, Any]:
        return {
            "inline_query": {
                "id": f"q{person_id}",
                "from": _user(person_id, "X", lang),
                "query": "",
                "offset": "",
            }
        }

    (answer,) = [c for c in await harness.feed(query(909)) if c.method == "answerInlineQuery"]
    assert answer.params["results"] == []
    assert answer.params["button"]["start_parameter"] == INVITE_START
    assert answer.params["button"]["text"] == t("Get your invitation in the bot", lang)

    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    link = await _invite(bob)
    (answer,) = [c for c in await harness.feed(query(202)) if c.method == "answerInlineQuery"]
    (result,) = answer.params["results"]
    assert result["reply_markup"]["inline_keyboard"][0][0]["url"] == link
    assert result["title"] == t("Invite to {chat}", lang, chat=TITLE)
    assert answer.params["is_personal"] == "true"

    # The inline button's /start: an account and the invitation.
    replies = await harness.person(909, "X", lang=lang).send(f"/start {INVITE_START}")
    assert any(c.method == "sendPhoto" for c in replies)


# -- a chat where the bot may not invite --------------------------------------------------


async def test_not_an_administrator_is_told_to_the_operator_and_invite_says_not_ready(
    harness: Harness,
    core: Core,
    fake: FakeTelegram,
    bot: Bot,
    lang: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.add_chat(CHAT, TITLE, admin=False)
    await _campaign(core)
    with caplog.at_level(logging.WARNING):
        await _worker(core, bot).run_due()  # the campaign's change: the bot checks the chat
    assert any("cannot invite people to chat" in r.getMessage() for r in caplog.records)
    status = (await core.invites.chat_statuses([CHAT]))[CHAT]
    assert (status.status, status.title) == (NOT_ADMIN, TITLE)

    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    replies = await bob.send("/invite")
    assert replies.last.text == t(
        "The campaign “{name}” is not ready yet; please try again later.", lang, name="Club growth"
    )
    assert not fake.calls_of("createChatInviteLink")

    fake.add_chat(CHAT, TITLE)  # made an administrator: the next check finds it
    await core.invites.check_chat(CHAT, BotChatApi(bot))
    assert (await core.invites.chat_statuses([CHAT]))[CHAT].status == READY
    await _invite(bob)


async def test_the_growth_updates_are_asked_for_only_while_a_campaign_names_a_chat(
    core: Core, fake: FakeTelegram
) -> None:
    updates = ChatUpdates(core)
    updates.used = ["message", "callback_query", "inline_query", *GROWTH_UPDATES]
    await updates.refresh(force=True)
    assert updates.allowed() == ["message", "callback_query", "inline_query"]
    fake.add_chat(CHAT, TITLE)
    await _campaign(core)
    assert await updates.refresh(force=True) is True
    assert set(GROWTH_UPDATES) <= set(updates.allowed())


async def test_an_erased_participants_link_counts_no_more(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    await core.accounts.erase(user=await bob.account())
    await _join(harness, fake, _user(101, "Ann"), link)
    assert await User.objects.get_or_none(telegram_id=101) is None


async def test_a_telegram_outage_while_inviting_is_said_not_raised(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign, lang: str
) -> None:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    fake.broken_methods.add("getChat")
    replies = await bob.send("/invite")
    assert replies.last.text == t("Telegram is not answering; please try again in a minute.", lang)
    fake.broken_methods.clear()
    await _invite(bob)


async def test_a_stay_check_during_an_outage_is_retried(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign
) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    await _join(harness, fake, _user(101, "Ann"), await _invite(bob))
    worker = _worker(core, bot)
    fake.broken_methods.add("getChatMember")
    with clock.shift(dt.timedelta(days=7, minutes=1)):
        await worker.run_due()
    assert await _qualification(core, 101) == "pending"
    fake.broken_methods.clear()
    with clock.shift(dt.timedelta(days=7, hours=2)):
        await worker.run_due()  # the retry, on the job schedule
    assert await _qualification(core, 101) == QUALIFIED


async def test_an_administrator_letting_many_in_at_once_is_not_throttled(
    strict_harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    """The production rate (8 updates in 5 s per sender) applies to people talking to the
    bot, not to a chat's joins: twenty approved at once by one administrator all count."""
    bob = strict_harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    admin = _user(999, "Admin")
    for person_id in range(1001, 1021):
        fake.members[(CHAT, person_id)] = "member"
        update = _member_update(_user(person_id, f"P{person_id}"), "left", "member", link)
        update["chat_member"]["from"] = admin
        await strict_harness.feed(update)
    assert (await bob.account()).referral_count == 20


async def test_a_join_that_fails_is_handled_again_and_never_told_to_the_chat(
    harness: Harness,
    core: Core,
    fake: FakeTelegram,
    club: Campaign,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.handlers import errors

    bob = harness.person(202, "Bob")
    await bob.send("/start")
    link = await _invite(bob)
    monkeypatch.setattr(errors, "CHAT_UPDATE_RETRIES", (0.0, 0.0))
    real = core.invites.member_changed
    failures = iter([ConnectionError("the database went away")])

    async def flaky(**values: Any) -> Any:
        for failure in failures:
            raise failure
        return await real(**values)

    monkeypatch.setattr(core.invites, "member_changed", flaky)
    replies = await harness.feed(_member_update(_user(101, "Ann"), "left", "member", link))
    assert not [c for c in replies if c.chat_id == CHAT]  # nothing said in the channel
    while errors._retrying:  # the retry, and any it queues in turn
        await asyncio.gather(*list(errors._retrying))
    assert (await bob.account()).referral_count == 1
    assert not [c for c in fake.calls if c.chat_id == CHAT and c.method == "sendMessage"]


@pytest.mark.parametrize(
    "update",
    [
        # A join by a link far longer than any Telegram makes.
        _member_update(_user(101, "Ann"), "left", "member", "https://t.me/+" + "x" * 5000),
        # Restricted, banned, an administrator promoted: not joins by a link.
        _member_update(
            _user(101, "Ann"),
            "left",
            "restricted",
            None,
            new_chat_member={
                "status": "restricted",
                "user": _user(101, "Ann"),
                "is_member": False,
                "can_send_messages": False,
                "can_send_audios": False,
                "can_send_documents": False,
                "can_send_photos": False,
                "can_send_videos": False,
                "can_send_video_notes": False,
                "can_send_voice_notes": False,
                "can_send_polls": False,
                "can_send_other_messages": False,
                "can_add_web_page_previews": False,
                "can_change_info": False,
                "can_invite_users": False,
                "can_pin_messages": False,
                "can_manage_topics": False,
                "can_react_to_messages": False,
                "can_edit_tag": False,
                "until_date": 0,
            },
        ),
        _member_update(
            _user(101, "Ann"),
            "member",
            "kicked",
            None,
            new_chat_member={
                "status": "kicked",
                "user": _user(101, "Ann"),
                "until_date": 0,
            },
        ),
        # A bot joining, and a chat no campaign names.
        _member_update({"id": 55, "is_bot": True, "first_name": "other_bot"}, "left", "member"),
        {
            "update_id": 987654,
            "chat_member": {
                **_member_update(_user(101, "Ann"), "left", "member")["chat_member"],
                "chat": {"id": -100555, "type": "supergroup", "title": "Elsewhere"},
            },
        },
        # A join request with no link, and an inline query of 256 odd characters.
        {
            "update_id": 987655,
            "chat_join_request": {
                "chat": {"id": CHAT, "type": "channel", "title": TITLE},
                "from": _user(101, "Ann"),
                "user_chat_id": 101,
                "date": 0,
            },
        },
        {
            "update_id": 987656,
            "inline_query": {
                "id": "q1",
                "from": _user(101, "Ann"),
                "query": "<b>'\"" * 64,
                "offset": "x",
            },
        },
    ],
)
async def test_odd_chat_updates_change_nothing_and_say_nothing(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign, update: dict[str, Any]
) -> None:
    replies = await harness.feed(update)
    assert [c for c in replies if c.method in ("sendMessage", "sendPhoto")] == []
    assert await User.objects.get_or_none(telegram_id=101) is None


async def test_update_ids_that_start_again_lower_still_apply(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, club: Campaign
) -> None:
    """After a week without updates Telegram picks its next ids at random: a lower id is a
    new update, not an old one."""
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    ann = _user(101, "Ann")
    fake.members[(CHAT, 101)] = "member"
    join = _member_update(ann, "left", "member", await _invite(bob))
    join["update_id"] = 900_000_000
    await harness.feed(join)
    leave = _member_update(ann, "member", "left")
    leave["update_id"] = 17
    fake.members[(CHAT, 101)] = "left"
    await harness.feed(leave)
    assert await _qualification(core, 101) == LEFT
    with clock.shift(dt.timedelta(days=UPDATES_KEPT_DAYS, minutes=1)):
        assert await core.invites.purge_updates() == 2  # the workers' housekeeping
    await harness.feed(leave)  # a repeat past the memory changes nothing: Ann is gone
    assert await _qualification(core, 101) == LEFT


async def test_someone_seen_in_the_chat_before_is_not_counted_by_a_link_later(
    harness: Harness, core: Core, fake: FakeTelegram, club: Campaign
) -> None:
    await _join(harness, fake, _user(101, "Ann"), None)  # joined on their own
    await _leave(harness, fake, _user(101, "Ann"))
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    await _join(harness, fake, _user(101, "Ann"), await _invite(bob))
    assert (await bob.account()).referral_count == 0
