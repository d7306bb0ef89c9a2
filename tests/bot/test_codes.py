"""/code, /newcode and Delete: the same codes the API serves."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from core.container import Core
from core.infra import clock
from core.referrals.models import ReferralCode
from tests.bot.conftest import Harness, Person, t
from tests.conftest import API

LINK = "https://t.me/referral_test_bot?start="


async def _member(harness: Harness, lang: str = "en") -> Person:
    ann = harness.person(101, "Ann", lang=lang)
    await ann.send("/start")
    return ann


async def _live_codes(ann: Person) -> list[ReferralCode]:
    account = await ann.account()
    return await ReferralCode.objects.filter(owner=account.id, closed_at=None).all()


async def test_no_code_offers_to_create_one(harness: Harness, lang: str) -> None:
    ann = await _member(harness, lang)
    for text in ("/code", t("My code", lang)):
        replies = await ann.send(text)
        assert replies.last.text == t("You have no active referral code.", lang)
        assert [b["text"] for b in replies.last.buttons] == [t("Create a code", lang)]

    replies = await ann.press(replies.last, t("Create a code", lang))

    assert t("For how long should the code work?", lang) in replies.last.text
    assert [b["text"] for b in replies.last.buttons] == [
        {"en": "1 day", "ru": "1 день"}[lang],
        {"en": "7 days", "ru": "7 дней"}[lang],
        {"en": "30 days", "ru": "30 дней"}[lang],
        {"en": "90 days", "ru": "90 дней"}[lang],
    ]


async def test_create_with_a_button_shows_the_card(harness: Harness, core: Core, lang: str) -> None:
    ann = await _member(harness, lang)
    question = (await ann.send(t("Create", lang))).last

    replies = await ann.press(question, {"en": "7 days", "ru": "7 дней"}[lang])

    (code,) = await _live_codes(ann)
    assert dt.timedelta(days=7) - (code.expires_at - clock.utcnow()) < dt.timedelta(minutes=1)
    assert t("Your new code is ready.", lang) in replies.text
    card = replies.last
    assert card.method == "sendPhoto"
    assert card.files["photo"].startswith(b"\x89PNG")
    assert t("Your referral code: <code>{code}</code>", lang, code=code.code) in card.text
    assert t("Uses: {uses} / {max_uses}", lang, uses=0, max_uses="∞") in card.text
    assert LINK + code.code in card.text
    share = card.button(t("Share", lang))
    assert parse_qs(urlsplit(share["url"]).query)["url"] == [LINK + code.code]
    assert card.button(t("Delete", lang))["callback_data"] == f"code:delete:{code.code}"
    # the question lost its buttons; pressing one again does not make a second code
    again = await ann.press(question, {"en": "7 days", "ru": "7 дней"}[lang])
    assert again.text == t("This button is out of date.", lang)
    assert len(await _live_codes(ann)) == 1


RU_MONTHS = "января февраля марта апреля мая июня июля августа сентября октября ноября декабря"


async def test_expiry_in_the_users_language(harness: Harness) -> None:
    day = (clock.utcnow() + dt.timedelta(days=100)).date()  # "through that day" (UTC)
    ru = await _member(harness, "ru")
    await ru.send(f"/newcode {day:%Y-%m-%d}")
    card = (await ru.send("/code")).last
    assert f"{day.day} {RU_MONTHS.split()[day.month - 1]} {day.year}, 23:59 UTC" in card.text
    en = harness.person(202, "Bob", lang="en")
    await en.send("/start")
    await en.send(f"/newcode {day:%d.%m.%Y}")
    card = (await en.send("/code")).last
    assert f"{day.day} {day:%B} {day.year}, 23:59 UTC" in card.text


@pytest.mark.parametrize(
    ("typed", "days"),
    [("30", 30), (" 1 ", 1), ("365", 365), ("+5", 5), ("7 days", 7), ("1 день", 1), ("90d", 90)],
)
async def test_typed_number_of_days(harness: Harness, typed: str, days: int) -> None:
    ann = await _member(harness)
    await ann.send("/newcode")

    replies = await ann.send(typed)

    assert replies.last.method == "sendPhoto"
    (code,) = await _live_codes(ann)
    assert abs((code.expires_at - clock.utcnow()) - dt.timedelta(days=days)) < dt.timedelta(
        minutes=1
    )


async def test_newcode_with_days_skips_the_question(harness: Harness, lang: str) -> None:
    ann = await _member(harness, lang)

    replies = await ann.send("/newcode 90")

    assert replies.last.method == "sendPhoto"
    assert len(await _live_codes(ann)) == 1


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0", "A code must work for at least 1 day."),
        ("-5", "A code must work for at least 1 day."),
        ("366", "A code can work for at most 365 days."),
        ("99999999999999999999", "A code can work for at most 365 days."),
        ("-99999999999999999999", "A code must work for at least 1 day."),
        ("9" * 4000, "A code can work for at most 365 days."),
        ("soon", "I did not understand that."),
        ("abc", "I did not understand that."),
        ("7 weeks", "I did not understand that."),
        ("1e3", "I did not understand that."),
        ("5/1/2027", "I did not understand that."),  # January or May? Not guessed.
        ("7.5", "I did not understand that."),
        ("2020-01-01", "That date has already passed."),
        ("31.12.2999", "A code can work for at most 365 days."),
        ("2026-02-30", "I did not understand that."),
    ],
)
async def test_bad_expiry_is_explained(
    harness: Harness, typed: str, reason: str, lang: str
) -> None:
    ann = await _member(harness, lang)

    as_argument = await ann.send(f"/newcode {typed}")
    await ann.send("/newcode")
    in_dialog = await ann.send(typed)

    example = (clock.utcnow() + dt.timedelta(days=30)).date()
    for replies in (as_argument, in_dialog):
        assert replies.last.text == t(reason, lang) + " " + t(
            "Send a number of days from 1 to 365, or a date such as {iso} or {dotted}. "
            "/cancel stops.",
            lang,
            iso=f"{example:%Y-%m-%d}",
            dotted=f"{example:%d.%m.%Y}",
        )
    assert await _live_codes(ann) == []
    # still in the dialog: a good answer now works
    assert (await ann.send("7")).last.method == "sendPhoto"


@pytest.mark.parametrize("form", ["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", " %Y-%m-%d "])
async def test_typed_dates(harness: Harness, form: str) -> None:
    ann = await _member(harness)
    day = (clock.utcnow() + dt.timedelta(days=40)).date()
    await ann.send("/newcode")

    assert (await ann.send(day.strftime(form))).last.method == "sendPhoto"

    (code,) = await _live_codes(ann)
    last_minute = dt.datetime.combine(day, dt.time(23, 59), tzinfo=dt.UTC)
    assert code.expires_at == last_minute


async def test_today_and_the_last_allowed_day(harness: Harness, core: Core) -> None:
    """Today would give less than the day the bot promises: refused, with the reason."""
    ann = await _member(harness)
    today = clock.utcnow().date()
    refused = await ann.send(f"/newcode {today:%Y-%m-%d}")
    assert refused.last.text.startswith("A code must work for at least 1 day.")
    assert await _live_codes(ann) == []
    await ann.send("/cancel")
    tomorrow = today + dt.timedelta(days=1)
    assert (await ann.send(f"/newcode {tomorrow:%Y-%m-%d}")).last.method == "sendPhoto"
    (code,) = await _live_codes(ann)
    assert code.expires_at == dt.datetime.combine(tomorrow, dt.time(23, 59), tzinfo=dt.UTC)
    await core.referrals.delete_active_code(owner=await ann.account())

    last = clock.utcnow() + dt.timedelta(days=365)
    assert (await ann.send(f"/newcode {last:%d.%m.%Y}")).last.method == "sendPhoto"
    (code,) = await _live_codes(ann)
    assert code.expires_at <= clock.utcnow() + dt.timedelta(days=365)


async def test_text_in_the_middle_of_the_dialog(harness: Harness, lang: str) -> None:
    ann = await _member(harness, lang)
    await ann.send("/newcode")

    sticker = await ann.send(
        sticker={
            "file_id": "s",
            "file_unique_id": "s",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    )
    assert t("I did not understand that.", lang) in sticker.last.text
    helped = await ann.send("/help")
    assert t("/help — this message", lang) in helped.last.text
    unknown = await ann.send("/frobnicate")
    assert t("I do not know that command.", lang) in unknown.last.text
    cancelled = await ann.send("/cancel")
    assert cancelled.last.text == t("Cancelled.", lang)
    after = await ann.send("30")  # no dialog any more: just help
    assert t("/help — this message", lang) in after.last.text
    assert await _live_codes(ann) == []
    assert (await ann.send("/cancel")).last.text == t("There is nothing to cancel.", lang)


async def test_already_has_a_code(harness: Harness, lang: str) -> None:
    ann = await _member(harness, lang)
    await ann.send("/newcode 7")
    (code,) = await _live_codes(ann)

    for text in ("/newcode", "/newcode 30", t("Create", lang)):
        replies = await ann.send(text)
        assert (
            t("You already have an active code; delete it before creating a new one.", lang)
            in replies.text
        )
        assert replies.last.method == "sendPhoto"
        assert code.code in replies.last.text
    assert [c.code for c in await _live_codes(ann)] == [code.code]


async def test_delete_asks_then_the_code_stops_working(
    harness: Harness, client, register, lang: str
) -> None:
    ann = await _member(harness, lang)
    card = (await ann.send("/newcode 7")).last
    (code,) = await _live_codes(ann)

    question = await ann.press(card, t("Delete", lang))
    assert question.last.text == t(
        "Delete the code <code>{code}</code>? It stops working at once.", lang, code=code.code
    )
    assert len(await _live_codes(ann)) == 1  # nothing deleted before the confirmation

    done = await ann.press(question.last, t("Yes, delete it", lang))

    assert (
        t("The code <code>{code}</code> is deleted; it no longer works.", lang, code=code.code)
        in done.text
    )
    assert await _live_codes(ann) == []
    response = await client.post(
        f"{API}/auth/register",
        json={
            "email": "late@example.com",
            "password": "long enough pw",
            "referral_code": code.code,
        },
    )
    assert response.status_code == 400
    assert response.json()["code"] == "referral_code_expired"
    assert (await ann.send("/code")).last.text == t("You have no active referral code.", lang)

    # the same buttons again: polite, harmless
    twice = await ann.press(question.last, t("Yes, delete it", lang))
    assert t("This button is out of date.", lang) in twice.text
    stale = await ann.press(card, t("Delete", lang))
    assert stale.text == t("This button is out of date.", lang)


async def test_keep_and_a_button_for_an_older_code(harness: Harness, core: Core, lang: str) -> None:
    ann = await _member(harness, lang)
    old_card = (await ann.send("/newcode 7")).last
    question = await ann.press(old_card, t("Delete", lang))

    kept = await ann.press(question.last, t("No, keep it", lang))
    assert kept.text == t("OK, the code stays.", lang)
    assert len(await _live_codes(ann)) == 1

    # the code is replaced; the old card's buttons must not touch the new code
    await core.referrals.delete_active_code(owner=await ann.account())
    await ann.send("/newcode 30")
    confirm_old = await ann.press(question.last, data=question.last.buttons[0]["callback_data"])
    assert t("This button is out of date.", lang) in confirm_old.text
    assert len(await _live_codes(ann)) == 1


async def test_a_code_made_through_the_api_shows_in_chat(harness: Harness, core: Core) -> None:
    ann = await _member(harness)
    await core.referrals.create_code(
        owner=await ann.account(), expires_at=clock.utcnow() + dt.timedelta(days=3), max_uses=5
    )
    card = (await ann.send("/code")).last
    assert "Uses: 0 / 5" in card.text


async def test_keep_after_the_code_was_deleted_says_it_is_gone(harness: Harness, lang: str) -> None:
    """Delete pressed twice: "Yes" on one question, then "No, keep it" on the other."""
    ann = await _member(harness, lang)
    card = (await ann.send("/newcode 7")).last
    (code,) = await _live_codes(ann)
    first = await ann.press(card, t("Delete", lang))
    second = await ann.press(card, t("Delete", lang))
    await ann.press(first.last, t("Yes, delete it", lang))

    kept = await ann.press(second.last, t("No, keep it", lang))

    assert t("OK, the code stays.", lang) not in kept.text
    assert (
        t(
            "The code <code>{code}</code> no longer works, so there is nothing to keep.",
            lang,
            code=code.code,
        )
        in kept.text
    )
    assert await _live_codes(ann) == []
