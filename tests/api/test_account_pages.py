"""The pages behind the mailed links (/verify-email, /reset-password) and /account."""

from __future__ import annotations

import datetime as dt

import httpx

from core.auth.service import EMAIL_VERIFICATION, PASSWORD_RESET
from core.users import tokens
from tests.conftest import API, PASSWORD

STRICT = "script-src 'self'"


async def _mailed_token(user_id: int, purpose: str, *, minutes: float = 30) -> str:
    """What the mail job makes: the core's own one-time token (only its digest is stored)."""
    token, _ = await tokens.issue(user_id, purpose, dt.timedelta(minutes=minutes))
    return token


def _strict(response: httpx.Response) -> None:
    assert STRICT in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text
    assert "style=" not in response.text


async def test_a_verification_link_confirms_by_a_post_from_the_page(
    client: httpx.AsyncClient, register, login
) -> None:
    ann = await register("ann@example.com")
    token = await _mailed_token(ann["id"], EMAIL_VERIFICATION)

    page = await client.get("/verify-email", params={"token": token})
    assert page.status_code == 200
    _strict(page)
    assert 'action="/verify-email"' in page.text
    assert "data-autosubmit" in page.text
    assert '<script src="/static/pages/account.js">' in page.text
    headers = await login("ann@example.com")
    me = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert me["email_verified"] is False  # opening the page (a GET) changed nothing

    confirmed = await client.post("/verify-email", data={"token": token})
    assert confirmed.status_code == 200
    _strict(confirmed)
    assert "Your email is confirmed" in confirmed.text
    assert (await client.get(f"{API}/users/me", headers=headers)).json()["email_verified"]

    again = await client.post("/verify-email", data={"token": token})
    assert again.status_code == 400
    assert "unknown, expired or already used" in again.text
    for bad in ("", "x" * 600):
        assert (await client.get("/verify-email", params={"token": bad})).status_code == 400
    assert (await client.post("/verify-email", data={})).status_code == 400
    russian = await client.post(
        "/verify-email", data={"token": "nope"}, headers={"Accept-Language": "ru"}
    )
    assert "Ссылка не работает" in russian.text


async def test_a_reset_link_asks_for_the_new_password_twice(
    client: httpx.AsyncClient, register
) -> None:
    ann = await register("ann@example.com")
    token = await _mailed_token(ann["id"], PASSWORD_RESET)

    page = await client.get("/reset-password", params={"token": token})
    assert page.status_code == 200
    _strict(page)
    assert 'name="new_password"' in page.text
    assert 'name="repeat_password"' in page.text

    async def submit(first: str, second: str) -> httpx.Response:
        form = {"token": token, "new_password": first, "repeat_password": second}
        return await client.post("/reset-password", data=form)

    differ = await submit("new password 1", "new password 2")
    assert differ.status_code == 422
    assert "The two passwords differ." in differ.text
    short = await submit("short", "short")
    assert short.status_code == 422
    assert "8 to 128 characters" in short.text

    done = await submit("new password 1", "new password 1")
    assert done.status_code == 200
    assert "Your password is changed" in done.text
    old = await client.post(
        f"{API}/auth/token", data={"username": "ann@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401
    new = await client.post(
        f"{API}/auth/token", data={"username": "ann@example.com", "password": "new password 1"}
    )
    assert new.status_code == 200

    # Used: a friendly page, before any form and after one.
    used = await client.get("/reset-password", params={"token": token})
    assert used.status_code == 400
    assert "already used" in used.text
    assert (await submit("another pass 1", "another pass 1")).status_code == 400


async def test_an_expired_reset_link_gets_the_friendly_page(
    client: httpx.AsyncClient, register
) -> None:
    ann = await register("ann@example.com")
    token = await _mailed_token(ann["id"], PASSWORD_RESET, minutes=-1)
    page = await client.get("/reset-password", params={"token": token})
    assert page.status_code == 400
    assert "new_password" not in page.text


async def test_the_account_page_is_served_under_the_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/account", headers={"Accept-Language": "ru"})
    assert page.status_code == 200
    _strict(page)
    assert '<html lang="ru">' in page.text
    assert 'id="signin-form"' in page.text
    assert 'id="link-telegram"' in page.text  # a bot is configured in the tests
