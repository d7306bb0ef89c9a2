"""Registration, sign-in, refresh-token rotation and the signed-in user."""

from __future__ import annotations

import datetime as dt

import pytest

from core.auth.models import RefreshToken
from core.infra import clock
from core.referrals.models import ReferralCode
from core.users.models import User
from tests.api.support import ahead, assert_problem, assert_utc, assert_validation_error
from tests.conftest import API, PASSWORD
from tests.jobs import chat_messages

USER_FIELDS = {"id", "email", "full_name", "referrer_id", "telegram_id", "created_at"}


async def _code(client, headers, **fields) -> str:
    response = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7), **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()["code"]


# -- register --------------------------------------------------------------------------


async def test_register_returns_the_user_without_secrets(client):
    response = await client.post(
        f"{API}/auth/register",
        json={"email": "Ann.Smith@Example.COM", "password": PASSWORD, "full_name": "Ann Smith"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= USER_FIELDS
    assert isinstance(body["id"], int)
    assert body["email"] == "ann.smith@example.com"
    assert body["full_name"] == "Ann Smith"
    assert body["referrer_id"] is None
    assert body["telegram_id"] is None
    created = assert_utc(body["created_at"])
    assert abs(created - clock.utcnow()) < dt.timedelta(minutes=1)
    assert not any("password" in key or "hash" in key for key in body)
    assert PASSWORD not in response.text

    stored = await User.objects.get(id=body["id"])
    assert stored.email == "ann.smith@example.com"
    assert stored.password_hash
    assert stored.password_hash.startswith("$argon2")
    assert stored.password_hash not in response.text
    assert stored.referrer is None
    assert stored.referral_code is None


async def test_register_without_full_name(client):
    response = await client.post(
        f"{API}/auth/register", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json()["full_name"] is None


async def test_register_twice_is_email_taken(client, register):
    await register("ann@example.com")
    for second in ("ann@example.com", "ANN@example.com", "Ann@Example.Com", " ann@example.com"):
        response = await client.post(
            f"{API}/auth/register", json={"email": second, "password": PASSWORD}
        )
        assert_problem(response, 409, "email_taken")
    assert await User.objects.count() == 1


async def test_register_with_a_referral_code(client, user):
    owner, headers = await user("owner@example.com", full_name="Owner")
    code = await _code(client, headers, max_uses=5)
    response = await client.post(
        f"{API}/auth/register",
        json={"email": "friend@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert response.status_code == 201, response.text
    friend = response.json()
    assert friend["referrer_id"] == owner["id"]

    stored = await User.objects.get(id=friend["id"])
    assert stored.referrer.id == owner["id"]
    assert stored.referral_code == code
    assert (await ReferralCode.objects.get(code=code)).uses == 1
    # The owner has no Telegram chat: nothing to tell them there.
    assert await chat_messages() == []


async def test_a_referrer_in_telegram_is_notified(client, user):
    owner, headers = await user("owner@example.com")
    await User.objects.filter(id=owner["id"]).update(telegram_id=555001)
    code = await _code(client, headers)
    response = await client.post(
        f"{API}/auth/register",
        json={
            "email": "friend@example.com",
            "password": PASSWORD,
            "referral_code": code,
            "full_name": "Friend",
        },
    )
    assert response.status_code == 201
    (note,) = await chat_messages()
    assert note.status == "queued"
    assert note.payload == {
        "recipient_id": owner["id"],
        "message": "new_referral",
        "referral_id": response.json()["id"],
        "referral_name": "Friend",
        "held": False,
        "referral_count": 1,
    }


async def test_register_with_an_unknown_code(client):
    for code in ("NoSuchCode", "bad code!", "x" * 40):
        response = await client.post(
            f"{API}/auth/register",
            json={"email": "friend@example.com", "password": PASSWORD, "referral_code": code},
        )
        assert_problem(response, 400, "referral_code_invalid")
    assert await User.objects.count() == 0


async def test_register_with_a_deleted_code_is_expired(client, user):
    _, headers = await user("owner@example.com")
    code = await _code(client, headers)
    assert (await client.delete(f"{API}/referral-codes/me", headers=headers)).status_code == 204
    response = await client.post(
        f"{API}/auth/register",
        json={"email": "friend@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert_problem(response, 400, "referral_code_expired")
    assert not await User.objects.filter(email="friend@example.com").exists()
    assert (await ReferralCode.objects.get(code=code)).uses == 0


async def test_register_with_an_expired_code(client, user):
    _, headers = await user("owner@example.com")
    code = await _code(client, headers, code="ShortLived", expires_at=ahead(minutes=5))
    with clock.shift(dt.timedelta(minutes=6)):
        response = await client.post(
            f"{API}/auth/register",
            json={"email": "friend@example.com", "password": PASSWORD, "referral_code": code},
        )
    assert_problem(response, 400, "referral_code_expired")
    assert not await User.objects.filter(email="friend@example.com").exists()


async def test_register_with_an_exhausted_code(client, user):
    _, headers = await user("owner@example.com")
    code = await _code(client, headers, max_uses=1)
    first = await client.post(
        f"{API}/auth/register",
        json={"email": "first@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert first.status_code == 201
    response = await client.post(
        f"{API}/auth/register",
        json={"email": "second@example.com", "password": PASSWORD, "referral_code": code},
    )
    assert_problem(response, 400, "referral_code_exhausted")
    assert not await User.objects.filter(email="second@example.com").exists()
    assert (await ReferralCode.objects.get(code=code)).uses == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "ann@", "password": PASSWORD}, "email"),
        ({"email": "a" * 330 + "@example.com", "password": PASSWORD}, "email"),
        ({"email": "ann@example.com"}, "password"),
        ({"email": "ann@example.com", "password": "short12"}, "password"),
        ({"email": "ann@example.com", "password": "p" * 129}, "password"),
        ({"email": "ann@example.com", "password": PASSWORD, "full_name": ""}, "full_name"),
        ({"email": "ann@example.com", "password": PASSWORD, "full_name": "n" * 101}, "full_name"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "ann@example.com", "password": None}, "password"),
    ],
)
async def test_register_validation(client, body, field):
    response = await client.post(f"{API}/auth/register", json=body)
    assert_validation_error(response, field)
    assert await User.objects.count() == 0


async def test_register_password_and_name_bounds_are_inclusive(client):
    response = await client.post(
        f"{API}/auth/register",
        json={"email": "a@example.com", "password": "p" * 128, "full_name": "n" * 100},
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"{API}/auth/register", json={"email": "b@example.com", "password": "p" * 8}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"email": "ann@example.com", "password": ', "application/json"),
        (b"not json at all", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"", "application/json"),
        (b"email=ann%40example.com&password=correct+horse", "application/x-www-form-urlencoded"),
        (b'{"email": "ann@example.com", "password": "correct horse"}', "text/plain"),
        (b"\xff\xfe\x00garbage", "application/json"),
    ],
)
async def test_register_malformed_bodies(client, content, content_type):
    response = await client.post(
        f"{API}/auth/register", content=content, headers={"Content-Type": content_type}
    )
    assert_validation_error(response)
    assert await User.objects.count() == 0


# -- token -----------------------------------------------------------------------------


async def test_token(client, register):
    await register("ann@example.com")
    response = await client.post(
        f"{API}/auth/token", data={"username": "ANN@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert isinstance(body["refresh_token"], str)
    assert body["refresh_token"]
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] == 15 * 60
    assert await RefreshToken.objects.count() == 1

    me = await client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200


async def test_wrong_email_and_wrong_password_look_the_same(client, register):
    await register("ann@example.com")
    wrong_password = await client.post(
        f"{API}/auth/token", data={"username": "ann@example.com", "password": "wrong password"}
    )
    unknown_email = await client.post(
        f"{API}/auth/token", data={"username": "nobody@example.com", "password": PASSWORD}
    )
    first = assert_problem(wrong_password, 401, "invalid_credentials")
    second = assert_problem(unknown_email, 401, "invalid_credentials")
    assert first == second
    assert wrong_password.headers["www-authenticate"] == unknown_email.headers["www-authenticate"]
    assert await RefreshToken.objects.count() == 0


async def test_a_user_without_password_cannot_sign_in(client, core):
    """A bot-only account has no password hash; no password opens it."""
    await User.objects.create(email="botuser@example.com", telegram_id=424242, full_name="Bot User")
    for password in ("anything-at-all", PASSWORD):
        response = await client.post(
            f"{API}/auth/token", data={"username": "botuser@example.com", "password": password}
        )
        assert_problem(response, 401, "invalid_credentials")
    response = await client.post(
        f"{API}/auth/token", data={"username": "botuser@example.com", "password": ""}
    )
    assert_validation_error(response, "password")  # an empty form field is a missing one
    assert await RefreshToken.objects.count() == 0


async def test_token_needs_the_form_fields(client):
    response = await client.post(f"{API}/auth/token", data={"username": "ann@example.com"})
    assert_validation_error(response, "password")
    response = await client.post(
        f"{API}/auth/token", json={"username": "ann@example.com", "password": PASSWORD}
    )
    assert_validation_error(response)


# -- refresh ---------------------------------------------------------------------------


async def _tokens(client, email: str = "ann@example.com") -> dict:
    response = await client.post(
        f"{API}/auth/token", data={"username": email, "password": PASSWORD}
    )
    assert response.status_code == 200
    return response.json()


async def _refresh(client, token: str):
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates(client, register):
    await register("ann@example.com")
    first = await _tokens(client)
    response = await _refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["token_type"] == "bearer"
    assert isinstance(second["expires_in"], int)
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get(
        f"{API}/users/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me.status_code == 200

    # The new refresh token works; the used one does not.
    third = await _refresh(client, second["refresh_token"])
    assert third.status_code == 200
    assert_problem(await _refresh(client, first["refresh_token"]), 401, "invalid_refresh_token")


async def test_reusing_a_refresh_token_revokes_its_family(client, register):
    await register("ann@example.com")
    stolen = (await _tokens(client))["refresh_token"]
    other_session = (await _tokens(client))["refresh_token"]
    rotated = (await _refresh(client, stolen)).json()["refresh_token"]

    assert_problem(await _refresh(client, stolen), 401, "invalid_refresh_token")
    # The reuse ended the whole chain, including the newer token...
    assert_problem(await _refresh(client, rotated), 401, "invalid_refresh_token")
    # ...but not another sign-in of the same user.
    assert (await _refresh(client, other_session)).status_code == 200

    stolen_row = await RefreshToken.objects.get(token_hash=_digest(stolen))
    rotated_row = await RefreshToken.objects.get(token_hash=_digest(rotated))
    assert stolen_row.family == rotated_row.family
    assert stolen_row.revoked_at is not None
    assert rotated_row.revoked_at is not None


def _digest(token: str) -> str:
    from core.infra.security import token_digest

    return token_digest(token)


async def test_unknown_and_expired_refresh_tokens(client, register):
    await register("ann@example.com")
    for token in ("", "nonsense", "x" * 512):
        assert_problem(await _refresh(client, token), 401, "invalid_refresh_token")
    refresh = (await _tokens(client))["refresh_token"]
    with clock.shift(dt.timedelta(days=31)):
        assert_problem(await _refresh(client, refresh), 401, "invalid_refresh_token")
    # Expiry is not use: back in the present the token still works.
    assert (await _refresh(client, refresh)).status_code == 200


async def test_refresh_validation(client):
    assert_validation_error(await client.post(f"{API}/auth/refresh", json={}), "refresh_token")
    response = await client.post(f"{API}/auth/refresh", json={"refresh_token": "x" * 513})
    assert_validation_error(response, "refresh_token")


# -- users/me --------------------------------------------------------------------------


async def test_me(client, user):
    created, headers = await user("ann@example.com", full_name="Ann")
    response = await client.get(f"{API}/users/me", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in USER_FIELDS} == {key: created[key] for key in USER_FIELDS}
    assert_utc(body["created_at"])
    assert not any("password" in key or "hash" in key for key in body)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Basic YW5uOnBhc3N3b3Jk"},
        {"Authorization": "Token abc"},
    ],
)
async def test_me_without_a_valid_token(client, headers):
    assert_problem(await client.get(f"{API}/users/me", headers=headers), 401, "not_authenticated")


@pytest.mark.parametrize(
    "name",
    [
        "Ann\u202eeciL",  # right-to-left override: "Ann" then "Lice" reversed
        "Ann\u2066x\u2069",  # isolates
        "Ann\u200f",  # right-to-left mark
        "Ann\nLee",
        "Ann\x07",
        "Ann\u2028Lee",
        "   ",
    ],
)
async def test_names_with_control_or_direction_characters_are_refused(client, name):
    body = {"email": "ann@example.com", "password": PASSWORD, "full_name": name}
    response = await client.post(f"{API}/auth/register", json=body)
    assert_validation_error(response, "full_name")


async def test_names_with_joiners_and_any_script_are_kept(client):
    name = "Зоя 👩\u200d💻 אבי"
    body = {"email": "zoya@example.com", "password": PASSWORD, "full_name": name}
    response = await client.post(f"{API}/auth/register", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["full_name"] == name
