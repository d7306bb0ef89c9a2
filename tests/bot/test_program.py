"""The program in chat: /stats, /top, /rewards, /review, notifications, blocked accounts."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image

from core.container import Core
from core.infra import clock
from core.jobs.worker import Worker
from core.operators.service import Operator
from core.users.models import User
from tests.bot.conftest import Harness, Person, t, tn
from tests.bot.fake_telegram import FakeTelegram
from tests.conftest import PASSWORD

OPERATOR = Operator()


async def _referrer(
    harness: Harness, core: Core, lang: str, user_id: int = 202
) -> tuple[Person, str]:
    bob = harness.person(user_id, "Bob", lang=lang)
    await bob.send("/start")
    code = await core.referrals.create_code(
        owner=await bob.account(), expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    return bob, code.code


async def _convert(core: Core, user_id: int, external_id: str = "o-1") -> None:
    await core.conversions.convert(
        user_id=user_id,
        email=None,
        event="purchase",
        external_id=external_id,
        amount=None,
        currency=None,
    )


async def test_stats_shows_the_numbers_and_a_chart(
    harness: Harness, core: Core, fake: FakeTelegram, lang: str
) -> None:
    bob, code = await _referrer(harness, core, lang)
    await harness.person(101, "Ann").send(f"/start {code}")  # counts an open of Bob's link
    ann = await harness.person(101, "Ann").account()
    await core.accounts.sign_up(email="held@mailinator.com", password=PASSWORD, referral_code=code)
    await _convert(core, ann.id)
    await core.link_opens.flush()

    replies = await bob.send("/stats")

    photo = replies.last
    assert photo.method == "sendPhoto"
    picture = Image.open(io.BytesIO(photo.files["photo"]))
    assert picture.format == "PNG"
    assert picture.size == (640, 240)
    caption = photo.text
    for line in (
        t("Approved: {approved}", lang, approved=1),
        t("Under review: {pending}", lang, pending=1),
        t("Qualified: {qualified}", lang, qualified=1),
        tn(
            "Reward balance: {balance} point",
            "Reward balance: {balance} points",
            100,
            lang,
            balance=100,
        ),
        t("Link opens: {opens}", lang, opens=1),
    ):
        assert line in caption
    same = await bob.send(t("My stats", lang))  # the menu button does the same
    assert same.last.method == "sendPhoto"


async def test_top_names_the_leaders_and_your_rank(harness: Harness, core: Core, lang: str) -> None:
    bob, code = await _referrer(harness, core, lang)
    for n in range(2):
        await harness.person(300 + n, f"P{n}").send(f"/start {code}")
    carl = harness.person(404, "Carl", lang=lang)
    await carl.send("/start")

    board = (await bob.send("/top")).last.text
    assert "1. Bob — 2" in board
    assert t("Your rank: {rank} ({count})", lang, rank=1, count=2) in board
    assert "@" not in board
    assert (
        t("You have no approved referrals in this window yet.", lang)
        in (await carl.send("/top")).last.text
    )


async def test_rewards_are_listed_with_pages(harness: Harness, core: Core, lang: str) -> None:
    bob, _ = await _referrer(harness, core, lang)
    account = await bob.account()
    for n in range(12):
        await core.rewards.adjust(operator=OPERATOR, user_id=account.id, points=n + 1, note=f"n{n}")

    first = (await bob.send("/rewards")).last
    assert (
        tn(
            "Reward balance: {balance} point",
            "Reward balance: {balance} points",
            78,
            lang,
            balance=78,
        )
        in first.text
    )
    assert "+12" in first.text
    assert "+3" in first.text
    assert "+2 " not in first.text
    second = (await bob.press(first, t("Next »", lang))).text
    assert "+2" in second
    assert "+1" in second
    back = await bob.press(first, data="rwd:0:")
    assert "+12" in back.text
    junk = await bob.press(first, data="rwd:1:bm90LWEtY3Vyc29y")  # a cursor that is not one
    assert "+12" in junk.text


async def test_notifications_follow_the_referral(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker, lang: str
) -> None:
    _bob, code = await _referrer(harness, core, lang)
    held = await core.accounts.sign_up(
        email="held@mailinator.com", password=PASSWORD, full_name="Held", referral_code=code
    )
    await harness.person(101, "Ann").send(f"/start {code}")
    ann = await harness.person(101, "Ann").account()
    await _convert(core, ann.id)
    await _convert(core, held.id, "o-2")
    await core.review.decide(operator=OPERATOR, referral_id=held.id, approve=True)
    await notifier.run_due()

    texts = [call.text for call in fake.sent_to(202)][-5:]  # sent side by side: any order
    assert sorted(texts) == sorted(
        [
            t("{name} joined with your code; the referral is under review.", lang, name="Held"),
            tn(
                "{name} joined with your code; you now have {count} referral.",
                "{name} joined with your code; you now have {count} referrals.",
                2,
                lang,
                name="Ann",
                count=2,
            ),
            tn(
                "{name}'s referral qualified: +{points} point.",
                "{name}'s referral qualified: +{points} points.",
                100,
                lang,
                name="Ann",
                points=100,
            ),
            t("{name}'s referral qualified; its reward waits for the review.", lang, name="Held"),
            tn(
                "{name}'s referral was approved: +{points} point.",
                "{name}'s referral was approved: +{points} points.",
                100,
                lang,
                name="Held",
                points=100,
            ),
        ]
    )


async def test_a_rejection_is_told_to_the_referrer(
    harness: Harness, core: Core, fake: FakeTelegram, notifier: Worker, lang: str
) -> None:
    await _referrer(harness, core, lang)
    code = (
        await core.referrals.active_code(owner_id=(await harness.person(202, "Bob").account()).id)
    ).code
    held = await core.accounts.sign_up(
        email="x@mailinator.com", password=PASSWORD, referral_code=code
    )
    await core.review.decide(operator=OPERATOR, referral_id=held.id, approve=False)
    await notifier.run_due()
    texts = {call.text for call in fake.sent_to(202)}
    assert t("{name}'s referral was not approved.", lang, name=t("a friend", lang)) in texts


async def test_an_operator_reviews_in_chat(harness: Harness, core: Core, lang: str) -> None:
    _, code = await _referrer(harness, core, "en")
    first = await core.accounts.sign_up(
        email="a@mailinator.com", password=PASSWORD, referral_code=code
    )
    second = await core.accounts.sign_up(
        email="b@mailinator.com", password=PASSWORD, referral_code=code
    )
    root = harness.person(909, "Root", lang=lang)
    await root.send("/start")
    await User.objects.filter(telegram_id=909).update(is_superuser=True)

    card = (await root.send("/review")).last
    mark = "#" if lang == "en" else "№"
    assert f"{mark}{first.id}</b>" in card.text
    assert t("a throwaway mail domain", lang) in card.text
    decided = await root.press(card, t("Approve", lang))
    assert decided.answers[0].params["text"] == t("Approved.", lang)
    assert f"{mark}{second.id}</b>" in decided.text  # the next one
    again = await root.press(card, data=f"review:approve:{first.id}")  # an old button
    assert again.answers[0].params["text"] == t("This referral was already decided.", lang)
    rejected = await root.press(card, data=f"review:reject:{second.id}")
    assert t("Nothing is waiting for review.", lang) in rejected.text
    statuses = await core.review.referral_list(status=None, limit=10, cursor=None)
    assert {item.id: item.status for item in statuses.items} == {
        first.id: "approved",
        second.id: "rejected",
    }


async def test_only_operators_review(harness: Harness, core: Core, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send("/start")
    refused = (await ann.send("/review")).last
    assert refused.text == t("Only operators review referrals.", lang)
    pressed = await ann.press(refused, data="review:approve:5")
    assert pressed.answers[0].params["text"] == t("Only operators review referrals.", lang)


async def test_a_blocked_account_is_told_so_and_nothing_else(
    harness: Harness, core: Core, lang: str
) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    menu = (await ann.send("/start")).last
    account = await ann.account()
    await core.review.set_blocked(operator=OPERATOR, user_id=account.id, blocked=True)
    blocked = t("Your account is blocked. Contact the service's support.", lang)
    for text in ("/code", "/stats", "/newcode 7", "hello", "/start"):
        replies = await ann.send(text)
        assert [call.text for call in replies.sent] == [blocked]
    pressed = await ann.press(menu, data="code:create:")
    assert pressed.answers[0].params["text"] == blocked
    await core.review.set_blocked(operator=OPERATOR, user_id=account.id, blocked=False)
    assert "Something went wrong" not in (await ann.send("/code")).last.text


async def test_the_referral_list_says_which_are_under_review(
    harness: Harness, core: Core, lang: str
) -> None:
    bob, code = await _referrer(harness, core, lang)
    held = await core.accounts.sign_up(
        email="held@mailinator.com", password=PASSWORD, full_name="Held", referral_code=code
    )
    await harness.person(101, "Ann").send(f"/start {code}")
    lines = (await bob.send("/referrals")).last.text.split("\n")
    (held_line,) = [line for line in lines if "Held" in line]
    (ann_line,) = [line for line in lines if "Ann" in line]
    assert held_line.endswith(f"({t('under review', lang)})")
    assert not ann_line.endswith(")")
    await core.review.decide(operator=OPERATOR, referral_id=held.id, approve=False)
    lines = (await bob.send("/referrals")).last.text.split("\n")
    (held_line,) = [line for line in lines if "Held" in line]
    assert held_line.endswith(f"({t('not approved', lang)})")


async def test_a_person_who_never_sent_start_gets_an_account_from_any_command_that_needs_one(
    harness: Harness, core: Core
) -> None:
    cat = harness.person(303, "Cat")
    assert await core.users.by_telegram_id(303) is None

    for command in ("/stats", "/rewards", "/referrals", "/code"):
        replies = await cat.send(command)
        assert replies.last.method in ("sendMessage", "sendPhoto"), command

    account = await core.users.by_telegram_id(303)
    assert account is not None
    assert (account.full_name, account.referrer) == ("Cat", None)
    accounts = await User.objects.filter(telegram_id=303).count()
    assert accounts == 1  # made once, then found
