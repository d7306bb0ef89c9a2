"""Access tokens that must not open the API: expired, tampered, wrong algorithm or key."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest

from core.infra import clock
from tests.api.support import assert_problem
from tests.conftest import API, PASSWORD


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(user_id: int | str, **extra) -> dict:
    now = clock.utcnow()
    return {
        "sub": str(user_id),
        "type": "access",
        "iat": now,
        "exp": now + dt.timedelta(minutes=15),
        **extra,
    }


async def _me(client, token: str):
    return await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def signed_in(client, register, settings):
    """(user id, a valid access token, the service secret)."""
    body = await register("ann@example.com")
    response = await client.post(
        f"{API}/auth/token", data={"username": "ann@example.com", "password": PASSWORD}
    )
    secret = settings.auth.secret_key.get_secret_value()
    return body["id"], response.json()["access_token"], secret


async def test_the_valid_token_works(client, signed_in):
    user_id, token, secret = signed_in
    assert (await _me(client, token)).status_code == 200
    # A token made the service's way with its secret is accepted: the checks below fail
    # because of what they change, not because hand-made tokens never work.
    forged = jwt.encode(_claims(user_id), secret, algorithm="HS256")
    assert (await _me(client, forged)).status_code == 200


async def test_expired_access_token(client, signed_in):
    _, token, _ = signed_in
    with clock.shift(dt.timedelta(minutes=14)):
        assert (await _me(client, token)).status_code == 200
    with clock.shift(dt.timedelta(minutes=15, seconds=1)):
        assert_problem(await _me(client, token), 401, "not_authenticated")


async def test_tampered_signature(client, signed_in):
    _, token, _ = signed_in
    header, payload, signature = token.split(".")
    raw = bytearray(_unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    assert_problem(
        await _me(client, f"{header}.{payload}.{_b64(bytes(raw))}"), 401, "not_authenticated"
    )
    assert_problem(await _me(client, f"{header}.{payload}."), 401, "not_authenticated")


async def test_tampered_payload(client, signed_in, register):
    _, token, _ = signed_in
    other = await register("bob@example.com")
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["sub"] = str(other["id"])
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert_problem(await _me(client, forged), 401, "not_authenticated")


async def test_alg_none(client, signed_in):
    user_id, _, _ = signed_in
    unsigned = jwt.encode(_claims(user_id), None, algorithm="none")
    assert_problem(await _me(client, unsigned), 401, "not_authenticated")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(
        json.dumps(
            {"sub": str(user_id), "type": "access", "exp": int(clock.timestamp()) + 600}
        ).encode()
    )
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert_problem(await _me(client, token), 401, "not_authenticated")


async def test_token_signed_with_another_secret(client, signed_in):
    user_id, _, _ = signed_in
    token = jwt.encode(_claims(user_id), "another-secret-that-is-also-long-enough-0123", "HS256")
    assert_problem(await _me(client, token), 401, "not_authenticated")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_token_with_another_algorithm(client, signed_in):
    """HS512 with the right secret: only the algorithm the service issues is accepted."""
    user_id, _, secret = signed_in
    token = jwt.encode(_claims(user_id), secret, algorithm="HS512")
    assert_problem(await _me(client, token), 401, "not_authenticated")


BAD_CLAIMS = [
    {"sub": "ann@example.com"},
    {"sub": "-1"},
    {"sub": "1.0"},
    {"sub": ""},
    {"sub": 1},
    {"sub": "99999999999999999999999999"},
    {"sub": "9223372036854775808"},
    {"sub": "2147483648"},
    {"sub": "²"},  # str.isdigit() says yes, int() raises
    {"sub": " 1"},
    {"sub": "01"},
    {"type": "refresh"},
    {"type": None},
    {"exp": "tomorrow"},
]


async def test_token_with_bad_claims(client, signed_in):
    """Signed with the right key and algorithm, but not what the service issues."""
    user_id, _, secret = signed_in
    for claims in BAD_CLAIMS:
        token = jwt.encode({**_claims(user_id), **claims}, secret, algorithm="HS256")
        assert_problem(await _me(client, token), 401, "not_authenticated")


async def test_subject_in_other_scripts_digits_does_not_authenticate(client, signed_in):
    """int() reads Arabic-Indic or full-width digits as the same number: ASCII only."""
    user_id, _, secret = signed_in
    for zero in ("\u0660", "\uff10", "\u0966"):  # Arabic-Indic, full-width, Devanagari
        sub = "".join(chr(ord(zero) + int(digit)) for digit in str(user_id))
        assert int(sub) == user_id
        token = jwt.encode({**_claims(user_id), "sub": sub}, secret, algorithm="HS256")
        assert_problem(await _me(client, token), 401, "not_authenticated")


async def test_token_without_expiry_or_subject(client, signed_in):
    user_id, _, secret = signed_in
    for missing in ("exp", "sub"):
        claims = _claims(user_id)
        del claims[missing]
        token = jwt.encode(claims, secret, algorithm="HS256")
        assert_problem(await _me(client, token), 401, "not_authenticated")


async def test_token_of_a_user_that_does_not_exist(client, signed_in):
    user_id, _, secret = signed_in
    token = jwt.encode(_claims(user_id + 1000), secret, algorithm="HS256")
    assert_problem(await _me(client, token), 401, "not_authenticated")


async def test_refresh_token_is_not_an_access_token(client, signed_in):
    response = await client.post(
        f"{API}/auth/token", data={"username": "ann@example.com", "password": PASSWORD}
    )
    refresh = response.json()["refresh_token"]
    assert_problem(await _me(client, refresh), 401, "not_authenticated")
    # Nor the other way round.
    access = response.json()["access_token"]
    response = await client.post(f"{API}/auth/refresh", json={"refresh_token": access})
    assert_problem(response, 401, "invalid_refresh_token")


async def test_every_protected_endpoint_refuses_a_bad_token(client, signed_in):
    user_id, _, _ = signed_in
    bad = {"Authorization": "Bearer " + jwt.encode(_claims(user_id), None, algorithm="none")}
    for method, path in (
        ("GET", f"{API}/users/me"),
        ("GET", f"{API}/users/{user_id}/referrals"),
        ("POST", f"{API}/users/me/telegram-link"),
        ("GET", f"{API}/referral-codes/me"),
        ("DELETE", f"{API}/referral-codes/me"),
    ):
        response = await client.request(method, path, headers=bad)
        assert_problem(response, 401, "not_authenticated")
    response = await client.post(
        f"{API}/referral-codes", json={"expires_at": "2000-01-01T00:00:00Z"}, headers=bad
    )
    assert_problem(response, 401, "not_authenticated")
