"""Campaigns in chat (BOT.md v1.1 /stats and /rewards with the v1.2 lifecycle): points in hold
and available, the campaign when not the default, the hold's end told in chat, and a code of
a campaign that is not running."""

from __future__ import annotations

import datetime as dt

from aiogram import Bot

from bot.notifier import Notifier
from core.campaigns.service import Campaign
from core.container import Core
from core.infra import clock
from core.operators.service import Operator
from core.telegram.service import TELEGRAM_MESSAGE
from tests.bot.conftest import Harness, Person, t, tn
from tests.bot.fake_telegram import FakeTelegram

OPERATOR = Operator()


async def _winter(core: Core, **rules: object) -> Campaign:
    return await core.campaigns.create(
        operator=OPERATOR, key="winter", name="Winter drive", rules={"hold_days": 7, **rules}
    )


async def _referrer(
    harness: Harness, core: Core, campaign: Campaign, lang: str
) -> tuple[Person, str]:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    code = await core.referrals.create_code(
        owner=await bob.account(),
        campaign=campaign,
        expires_at=clock.utcnow() + dt.timedelta(days=30),
    )
    return bob, code.code


async def test_rewards_in_hold_show_as_such_with_their_campaign(
    harness: Harness, core: Core, fake: FakeTelegram, bot: Bot, lang: str
) -> None:
    bob, code = await _referrer(harness, core, await _winter(core), lang)
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send(f"/start {code}")
    await core.conversions.convert(
        user_id=(await ann.account()).id,
        email=None,
        event="purchase",
        external_id="o-1",
        amount=None,
        currency=None,
    )

    text = (await bob.send("/rewards")).last.text
    assert (
        tn(
            "Reward balance: {balance} point",
            "Reward balance: {balance} points",
            0,
            lang,
            balance=0,
        )
        in text
    )
    assert (
        tn("In hold: {pending} point", "In hold: {pending} points", 100, lang, pending=100) in text
    )
    assert "Winter drive" in text
    assert t("in hold until {day}", lang, day="")[:8] in text
    caption = (await bob.send("/stats")).last.text
    assert (
        tn("In hold: {pending} point", "In hold: {pending} points", 100, lang, pending=100)
        in caption
    )

    with clock.shift(dt.timedelta(days=7, minutes=1)):
        await core.worker().run_due()  # the hold ends: the release job
        worker = core.worker({TELEGRAM_MESSAGE: Notifier(bot=bot, core=core).send})
        await worker.run_due()
    expected = tn(
        "Your hold is over: {points} point is now yours to spend.",
        "Your hold is over: {points} points are now yours to spend.",
        100,
        lang,
        points=100,
    )
    await fake.wait_for(lambda c: c.chat_id == 202 and c.text == expected)
    text = (await bob.send("/rewards")).last.text
    assert (
        tn(
            "Reward balance: {balance} point",
            "Reward balance: {balance} points",
            100,
            lang,
            balance=100,
        )
        in text
    )
    assert (
        tn("In hold: {pending} point", "In hold: {pending} points", 100, lang, pending=100)
        not in text
    )


async def test_a_code_of_a_paused_campaign_asks_to_join_without_it(
    harness: Harness, core: Core, lang: str
) -> None:
    campaign = await _winter(core)
    _, code = await _referrer(harness, core, campaign, lang)
    await core.campaigns.update(operator=OPERATOR, key="winter", status="paused")

    replies = await harness.person(101, "Ann", lang=lang).send(f"/start {code}")

    assert (
        t("The campaign of this referral code is not running right now.", lang) in replies.last.text
    )
    assert await harness.person(101, "Ann").account() is None
