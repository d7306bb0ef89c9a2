"""`/start link_<token>`: one chat per API account, one-time, 15 minutes."""

from __future__ import annotations

import datetime as dt

from core.infra import clock
from core.users.models import User
from tests.bot.conftest import Harness, t
from tests.conftest import API

PREFIX = "https://t.me/referral_test_bot?start="


async def _account(email: str) -> User:
    """An API account (made directly: password hashing would only slow these tests down)."""
    return await User.objects.create(email=email, full_name=email.split("@")[0].title())


async def _invite(core, email: str) -> str:
    invite = await core.telegram.create_link(user=await User.objects.get(email=email))
    return invite.url.removeprefix(PREFIX)


async def _link(client, headers) -> str:
    response = await client.post(f"{API}/users/me/telegram-link", headers=headers)
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    assert url.startswith(PREFIX + "link_")
    return url.removeprefix(PREFIX)


async def test_linking_says_so_in_the_users_language(harness: Harness, core, lang: str) -> None:
    await _account("ann@example.com")
    ann = harness.person(101, "Ann", lang=lang)

    replies = await ann.send(f"/start {await _invite(core, 'ann@example.com')}")

    assert replies.last.text == t(
        "Done: this chat is linked to your account {account}. "
        "Your code and referrals are now the same here and wherever you sign in.",
        lang,
        account="ann@example.com",
    )
    assert replies.last.keyboard  # the main menu
    assert (await ann.account()).email == "ann@example.com"


async def test_linking_shares_code_and_referrals(harness: Harness, client, user) -> None:
    _, headers = await user("ann@example.com", full_name="Ann API")
    payload = await _link(client, headers)
    ann = harness.person(101, "Ann", lang="en")

    await ann.send(f"/start {payload}")

    profile = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert profile["telegram_id"] == 101
    assert await User.objects.filter(telegram_id=101).count() == 1

    # a code made in chat is the API's code…
    await ann.send("/newcode 30")
    api_code = (await client.get(f"{API}/referral-codes/me", headers=headers)).json()
    assert api_code["telegram_link"] == PREFIX + api_code["code"]
    assert api_code["code"] in (await ann.send("/code")).last.text
    # …and deleting it through the API shows in chat
    assert (await client.delete(f"{API}/referral-codes/me", headers=headers)).status_code == 204
    assert (await ann.send("/code")).last.text == "You have no active referral code."
    # a referral through the API appears in the chat list
    created = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": (clock.utcnow() + dt.timedelta(days=5)).isoformat()},
        headers=headers,
    )
    await client.post(
        f"{API}/auth/register",
        json={
            "email": "zed@example.com",
            "password": "long enough pw",
            "full_name": "Zed",
            "referral_code": created.json()["code"],
        },
    )
    assert "1. Zed — " in (await ann.send("/referrals")).last.text
    # the API now says the account is linked
    again = await client.post(f"{API}/users/me/telegram-link", headers=headers)
    assert again.status_code == 409
    assert again.json()["code"] == "telegram_already_linked"


async def test_a_link_works_once(harness: Harness, core, lang: str) -> None:
    await _account("ann@example.com")
    payload = await _invite(core, "ann@example.com")
    await harness.person(101, "Ann").send(f"/start {payload}")
    other = harness.person(202, "Mallory", lang=lang)

    replies = await other.send(f"/start {payload}")

    assert (
        t("This link has already been used. Request a new link and open it again.", lang)
        in replies.text
    )
    assert await other.account() is None
    assert (await User.objects.get(email="ann@example.com")).telegram_id == 101


async def test_an_expired_link_is_refused(harness: Harness, core, lang: str) -> None:
    await _account("ann@example.com")
    payload = await _invite(core, "ann@example.com")
    ann = harness.person(101, "Ann", lang=lang)

    with clock.shift(dt.timedelta(minutes=16)):
        replies = await ann.send(f"/start {payload}")

    assert t("This link has expired. Request a new link and open it again.", lang) in replies.text
    assert (await User.objects.get(email="ann@example.com")).telegram_id is None
    # within the 15 minutes it still works
    fresh = await _invite(core, "ann@example.com")
    with clock.shift(dt.timedelta(minutes=14)):
        await ann.send(f"/start {fresh}")
    assert (await User.objects.get(email="ann@example.com")).telegram_id == 101


async def test_a_telegram_account_of_someone_else_is_refused(
    harness: Harness, core, lang: str
) -> None:
    await _account("ann@example.com")
    await harness.person(101, "Ann").send(f"/start {await _invite(core, 'ann@example.com')}")
    await _account("bob@example.com")
    payload = await _invite(core, "bob@example.com")
    ann = harness.person(101, "Ann", lang=lang)

    replies = await ann.send(f"/start {payload}")

    assert (
        t("This Telegram account already belongs to another account, so it cannot be linked.", lang)
        in replies.text
    )
    assert (await User.objects.get(email="bob@example.com")).telegram_id is None
    assert (await User.objects.get(email="ann@example.com")).telegram_id == 101
    # the refused link was not spent: Bob can still use it from his own Telegram
    await harness.person(202, "Bob").send(f"/start {payload}")
    assert (await User.objects.get(email="bob@example.com")).telegram_id == 202


async def test_a_chat_account_with_history_is_not_merged(harness: Harness, core) -> None:
    bob = harness.person(202, "Bob")
    await bob.send("/start")
    await bob.send("/newcode 7")  # this chat account has a code: it is someone's own account
    await _account("ann@example.com")

    replies = await bob.send(f"/start {await _invite(core, 'ann@example.com')}")

    assert "already belongs to another account" in replies.text
    assert (await User.objects.get(email="ann@example.com")).telegram_id is None


async def test_a_bare_chat_account_is_folded_into_the_linked_one(harness: Harness, core) -> None:
    ann = harness.person(101, "Ann")
    await ann.send("/start")  # opened the bot before linking: an empty chat-only account
    await _account("ann@example.com")

    await ann.send(f"/start {await _invite(core, 'ann@example.com')}")

    assert (await ann.account()).email == "ann@example.com"
    assert await User.objects.count() == 1


async def test_junk_link_payloads(harness: Harness, lang: str) -> None:
    ann = harness.person(101, "Ann", lang=lang)
    for payload in ("link_", "link_" + "x" * 59, "link_../../etc/passwd", "link_ünïcode"):
        replies = await ann.send(f"/start {payload}")
        assert (
            t("This link is not valid. Request a new link and open it again.", lang) in replies.text
        )
    assert await User.objects.count() == 0


async def test_a_web_referral_linked_by_its_one_time_link_is_never_referred_again(
    harness: Harness, client, user, register
) -> None:
    """The landing page's path: sign up on the web with a code, link the chat with the
    one-time link it offers, then open any referral deep link: no second account, no
    second referral."""
    ref, ref_headers = await user("ref@example.com", full_name="Ref")
    made = await client.post(
        f"{API}/referral-codes",
        json={"expires_at": (clock.utcnow() + dt.timedelta(days=3)).isoformat()},
        headers=ref_headers,
    )
    code = made.json()["code"]
    await register("bob@example.com", referral_code=code)
    login = await client.post(
        f"{API}/auth/token",
        data={"username": "bob@example.com", "password": "correct horse battery"},
    )
    bob_headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    bob = harness.person(303, "Bob", lang="en")
    await bob.send(f"/start {await _link(client, bob_headers)}")

    replies = await bob.send(f"/start {code}")

    assert replies.last.text == t(
        "You are already registered. A referrer is set only when an account is created.", "en"
    )
    assert await User.objects.filter(telegram_id=303).count() == 1
    page = await client.get(f"{API}/users/{ref['id']}/referrals", headers=ref_headers)
    assert page.json()["total"] == 1
