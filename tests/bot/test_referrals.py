"""/referrals: the total, a page of names and dates, Prev/Next."""

from __future__ import annotations

import datetime as dt

from core.container import Core
from core.infra import clock
from tests.bot.conftest import Harness, Person, t, tn


async def _referrer_with(harness: Harness, core: Core, count: int, lang: str) -> Person:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    code = await core.referrals.create_code(
        owner=await bob.account(), expires_at=clock.utcnow() + dt.timedelta(days=30)
    )
    for number in range(1, count + 1):
        await core.accounts.sign_up_telegram(
            telegram_id=10_000 + number,
            full_name=f"Friend {number:02d}",
            username=None,
            language_code="en",
            referral_code=code.code,
        )
    return bob


def _total(count: int, lang: str) -> str:
    return tn("You have {total} referral.", "You have {total} referrals.", count, lang, total=count)


async def test_no_referrals_yet(harness: Harness, lang: str) -> None:
    bob = harness.person(202, "Bob", lang=lang)
    await bob.send("/start")
    for text in ("/referrals", t("Referrals", lang)):
        replies = await bob.send(text)
        assert replies.last.text == t("No one has joined with your code yet.", lang)
        assert replies.last.buttons == []


async def test_pages_with_prev_and_next(harness: Harness, core: Core, lang: str) -> None:
    bob = await _referrer_with(harness, core, 23, lang)

    first = (await bob.send("/referrals")).last

    assert first.text.startswith(_total(23, lang))
    assert "1. Friend 23 — " in first.text
    assert "10. Friend 14 — " in first.text
    assert "Friend 13" not in first.text
    assert t("Page {page} of {pages}", lang, page=1, pages=3) in first.text
    assert [b["text"] for b in first.buttons] == [t("Next »", lang)]

    second = await bob.press(first, t("Next »", lang))
    page = harness.fake.messages[(202, first.result["message_id"])]  # edited in place
    assert "11. Friend 13 — " in page["text"]
    assert "20. Friend 04" in page["text"]
    assert [b["text"] for b in page["reply_markup"]["inline_keyboard"][0]] == [
        t("« Prev", lang),
        t("Next »", lang),
    ]
    assert second.methods() == ["answerCallbackQuery", "editMessageText"]

    last = await bob.press(page, t("Next »", lang))
    page = harness.fake.messages[(202, first.result["message_id"])]
    assert "21. Friend 03" in page["text"]
    assert "23. Friend 01" in page["text"]
    assert t("Page {page} of {pages}", lang, page=3, pages=3) in page["text"]
    assert last.sent == []

    back = await bob.press(page, t("« Prev", lang))
    page = harness.fake.messages[(202, first.result["message_id"])]
    assert "11. Friend 13" in page["text"]
    assert back.answers


async def test_same_page_twice_and_forged_offsets(harness: Harness, core: Core) -> None:
    bob = await _referrer_with(harness, core, 12, "en")
    first = (await bob.send("/referrals")).last

    twice = await bob.press(first, data="refs:0")  # the page shown already: not an error
    assert [c.method for c in twice] == ["answerCallbackQuery", "editMessageText"]
    assert "Something went wrong" not in twice.text

    for data in ("refs:-30", "refs:99999", "refs:abc", "refs:", "refs:1:2"):
        replies = await bob.press(first, data=data)
        assert replies.answers, data
        assert "Something went wrong" not in replies.text
    page = harness.fake.messages[(202, first.result["message_id"])]
    assert "Page 2 of 2" in page["text"]  # 99999 showed the last page


async def test_someone_elses_referrals_are_not_shown(harness: Harness, core: Core) -> None:
    await _referrer_with(harness, core, 3, "en")
    eve = harness.person(303, "Eve")
    await eve.send("/start")

    replies = await eve.send("/referrals")

    assert replies.last.text == "No one has joined with your code yet."
