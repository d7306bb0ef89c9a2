"""The HTTP contract (docs/api.md), checked the way a client sees it: a real uvicorn over TCP.

Written from the contract alone. Clock-dependent rules (a code or a token expiring on its own)
are covered by the in-process tests, which can move the service clock; here the server runs
on real time, so every timestamp sent is comfortably inside or outside the allowed ranges.
Three shared accounts serve the tests that do not need a fresh one; their codes are deleted
after every test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import ROOT, attach_telegram

API = "/api/v1"
PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"
BOT = os.environ["TELEGRAM_BOT_USERNAME"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")
CODE_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")

Headers = dict[str, str]


# --- helpers -----------------------------------------------------------------------------


class Recorder:
    """Every response the tests saw: none may be a 5xx."""

    def __init__(self) -> None:
        self.server_errors: list[str] = []

    async def __call__(self, response: httpx.Response) -> None:
        if response.status_code >= 500 and response.request.url.path != "/health/ready":
            await response.aread()
            self.server_errors.append(
                f"{response.request.method} {response.request.url} -> "
                f"{response.status_code} {response.text[:300]}"
            )


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
async def http(server: str, recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server, timeout=20, event_hooks={"response": [recorder]}
    ) as client:
        yield client


@dataclass(frozen=True)
class Account:
    body: dict
    headers: Headers

    @property
    def id(self) -> int:
        return int(self.body["id"])

    @property
    def email(self) -> str:
        return str(self.body["email"])


@pytest.fixture(scope="module")
async def accounts(http: httpx.AsyncClient) -> list[Account]:
    return [Account(body, headers) for body, headers in await users(http, 3, "shared")]


@pytest.fixture(autouse=True)
async def _checks(http: httpx.AsyncClient, recorder: Recorder, accounts: list[Account]) -> Any:
    yield
    errors, recorder.server_errors[:] = list(recorder.server_errors), []
    assert not errors, "5xx responses:\n" + "\n".join(errors)
    for account in accounts:  # the next test finds the shared accounts without a code
        response = await http.delete(f"{API}/referral-codes/me", headers=account.headers)
        assert response.status_code in (204, 404), response.text


def email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def unique_code(prefix: str = "Cd") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def in_days(days: float, *, tz: dt.tzinfo = dt.UTC) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).astimezone(tz).isoformat()


def timestamp(value: Any) -> dt.datetime:
    """A response timestamp: ISO 8601 in UTC, with `Z` or `+00:00`."""
    assert isinstance(value, str), value
    assert TIMESTAMP.match(value), value
    return dt.datetime.fromisoformat(value)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM, response.headers
    body = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == HTTPStatus(status).phrase
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["code"], str)
    assert body["code"]
    if code is not None:
        assert body["code"] == code, body
    if status == 401 and body["code"] == "not_authenticated":
        assert response.headers["www-authenticate"].split()[0] == "Bearer"
    if body["code"] == "validation_error":
        assert status == 422
        assert isinstance(body["errors"], list)
        assert body["errors"]
        for error in body["errors"]:
            assert isinstance(error["loc"], list)
            assert isinstance(error["msg"], str)
            assert isinstance(error["type"], str)
    return body


def assert_client_error(response: httpx.Response) -> dict:
    """Bad input: a 4xx with a problem body, whatever the exact status."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    return assert_problem(response, response.status_code)


def assert_not_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert_problem(response, response.status_code)


async def register(http: httpx.AsyncClient, address: str, **fields: Any) -> dict:
    response = await http.post(
        f"{API}/auth/register", json={"email": address, "password": PASSWORD, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def token(http: httpx.AsyncClient, address: str, password: str = PASSWORD) -> dict:
    response = await http.post(
        f"{API}/auth/token", data={"username": address, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


def bearer(access_token: str) -> Headers:
    return {"Authorization": f"Bearer {access_token}"}


async def user(
    http: httpx.AsyncClient, prefix: str = "user", **fields: Any
) -> tuple[dict, Headers]:
    address = email(prefix)
    body = await register(http, address, **fields)
    return body, bearer((await token(http, address))["access_token"])


async def users(
    http: httpx.AsyncClient, count: int, prefix: str = "user"
) -> list[tuple[dict, Headers]]:
    return list(await asyncio.gather(*(user(http, f"{prefix}{i}") for i in range(count))))


async def new_code(http: httpx.AsyncClient, headers: Headers, **fields: Any) -> dict:
    response = await http.post(
        f"{API}/referral-codes", json={"expires_at": in_days(30), **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def superuser(http: httpx.AsyncClient) -> tuple[dict, Headers]:
    """Superuser rights come from the command line, never from HTTP."""
    address = email("admin")
    body = await register(http, address)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        "superuser",
        address,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return body, bearer((await token(http, address))["access_token"])


def forged_token(sub: Any, *, minutes: float = 15, **claims: Any) -> str:
    """An access token signed with the service's key (known to the test environment)."""
    now = dt.datetime.now(dt.UTC)
    payload = {
        "sub": sub,
        "type": "access",
        "iat": now,
        "exp": now + dt.timedelta(minutes=minutes),
        **claims,
    }
    return jwt.encode(payload, os.environ["SECRET_KEY"], algorithm="HS256")


# --- health --------------------------------------------------------------------------------


async def test_health(http: httpx.AsyncClient) -> None:
    live = await http.get("/health/live")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}

    ready = await http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["cache"] in {"ok", "degraded"}


async def test_health_without_a_database(databaseless_server: str) -> None:
    async with httpx.AsyncClient(base_url=databaseless_server, timeout=20) as client:
        live = await client.get("/health/live")
        assert live.status_code == 200
        assert live.json() == {"status": "ok"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["database"] != "ok"
        # Requests that need the database say it is unavailable: a 503, never a 500.
        for response in (
            await client.post(
                f"{API}/auth/register",
                json={"email": "down@example.com", "password": "correct horse"},
            ),
            await client.post(
                f"{API}/auth/token", data={"username": "down@example.com", "password": "x" * 8}
            ),
            await client.get(f"{API}/referral-codes", params={"email": "down@example.com"}),
            await client.get(f"{API}/referral-codes/SOMECODE"),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "service_unavailable"
            assert response.headers["retry-after"] == "5"


# --- auth ----------------------------------------------------------------------------------


async def test_register_returns_the_user(http: httpx.AsyncClient) -> None:
    address = email("Mixed.Case")
    response = await http.post(
        f"{API}/auth/register",
        json={"email": address.upper(), "password": PASSWORD, "full_name": "Ada Lovelace"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["email"] == address.lower()
    assert body["full_name"] == "Ada Lovelace"
    assert body["referrer_id"] is None
    assert body["telegram_id"] is None
    created = timestamp(body["created_at"])
    assert abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert not any("password" in key or "hash" in key for key in body)
    assert PASSWORD not in response.text
    assert "$argon2" not in response.text

    # full_name is optional; the e-mail is unique whatever its case.
    other = await register(http, email())
    assert other["full_name"] is None
    for variant in (address, address.upper(), address.lower().capitalize()):
        taken = await http.post(
            f"{API}/auth/register", json={"email": variant, "password": PASSWORD}
        )
        assert_problem(taken, 409, "email_taken")

    # The account signs in with its e-mail in any case, and /users/me is the same user.
    pair = await token(http, address.upper())
    me = await http.get(f"{API}/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]
    assert me.json()["email"] == address.lower()


async def test_internationalized_email(http: httpx.AsyncClient) -> None:
    """An IDN domain, sent as Unicode or as punycode, is one address."""
    local = uuid.uuid4().hex[:12]
    punycode, unicode = f"{local}@xn--exmple-cua.com", f"{local}@exämple.com"
    created = await register(http, punycode)
    assert created["email"] in (unicode, punycode)
    taken = await http.post(f"{API}/auth/register", json={"email": unicode, "password": PASSWORD})
    assert_problem(taken, 409, "email_taken")
    for spelling in (punycode, unicode, unicode.upper()):
        pair = await token(http, spelling)
        me = await http.get(f"{API}/users/me", headers=bearer(pair["access_token"]))
        assert me.json()["id"] == created["id"]
    await new_code(http, bearer(pair["access_token"]))
    for spelling in (punycode, unicode):
        found = await http.get(f"{API}/referral-codes", params={"email": spelling})
        assert found.status_code == 200, (spelling, found.text)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", ""),
        ("email", "a@"),
        ("email", None),
        ("email", 12),
        ("password", "x" * 7),
        ("password", "x" * 129),
        ("password", ""),
        ("password", None),
        ("password", 12345678),
        ("full_name", ""),
        ("full_name", "x" * 101),
        ("full_name", 5),
        ("full_name", ["Ada"]),
        ("referral_code", 5),
    ],
)
async def test_register_validation(http: httpx.AsyncClient, field: str, value: Any) -> None:
    body = {"email": email(), "password": PASSWORD, field: value}
    response = await http.post(f"{API}/auth/register", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert any(field in error["loc"] for error in problem["errors"]), problem


async def test_register_length_limits_are_inclusive(http: httpx.AsyncClient) -> None:
    for password, name in (("x" * 8, "x"), ("y" * 128, "n" * 100)):
        response = await http.post(
            f"{API}/auth/register",
            json={"email": email(), "password": password, "full_name": name},
        )
        assert response.status_code == 201, response.text
        assert response.json()["full_name"] == name


@pytest.mark.parametrize("missing", ["email", "password"])
async def test_register_requires_email_and_password(http: httpx.AsyncClient, missing: str) -> None:
    body = {"email": email(), "password": PASSWORD}
    del body[missing]
    problem = assert_problem(
        await http.post(f"{API}/auth/register", json=body), 422, "validation_error"
    )
    assert ["body", missing] in [error["loc"] for error in problem["errors"]]


async def test_register_cannot_grant_privileges(
    http: httpx.AsyncClient, accounts: list[Account]
) -> None:
    owner = accounts[0]
    address = email()
    body = await register(
        http, address, is_superuser=True, referrer_id=owner.id, telegram_id=42, id=1
    )
    assert body["id"] != 1 or owner.id == 1
    assert body["referrer_id"] is None
    assert body["telegram_id"] is None
    assert body.get("is_superuser", False) is False
    headers = bearer((await token(http, address))["access_token"])
    listing = await http.get(f"{API}/users/{owner.id}/referrals", headers=headers)
    assert_problem(listing, 403, "forbidden")


async def test_token(http: httpx.AsyncClient) -> None:
    address = email()
    await register(http, address)
    response = await http.post(
        f"{API}/auth/token",
        data={"grant_type": "password", "username": address, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    pair = response.json()
    assert isinstance(pair["access_token"], str)
    assert pair["access_token"]
    assert pair["token_type"] == "bearer"
    assert isinstance(pair["expires_in"], int)
    assert pair["expires_in"] > 0
    assert isinstance(pair["refresh_token"], str)
    assert pair["refresh_token"]
    assert "no-store" in response.headers.get("cache-control", "")  # RFC 6749 §5.1

    wrong_password = await http.post(
        f"{API}/auth/token", data={"username": address, "password": "wrong password"}
    )
    unknown_email = await http.post(
        f"{API}/auth/token", data={"username": email("nobody"), "password": PASSWORD}
    )
    first = assert_problem(wrong_password, 401, "invalid_credentials")
    second = assert_problem(unknown_email, 401, "invalid_credentials")
    assert first == second

    for data in ({"username": address}, {"password": PASSWORD}, {}):
        assert_problem(await http.post(f"{API}/auth/token", data=data), 422, "validation_error")
    # The grant is form-encoded, not JSON.
    as_json = await http.post(f"{API}/auth/token", json={"username": address, "password": PASSWORD})
    assert_problem(as_json, 422, "validation_error")
    other_grant = await http.post(
        f"{API}/auth/token",
        data={"grant_type": "client_credentials", "username": address, "password": PASSWORD},
    )
    assert_client_error(other_grant)


async def test_refresh_rotates(http: httpx.AsyncClient) -> None:
    address = email()
    created = await register(http, address)
    first = await token(http, address)

    response = await http.post(
        f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    second = response.json()
    assert set(second) >= {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["token_type"] == "bearer"
    assert isinstance(second["expires_in"], int)
    assert second["refresh_token"] != first["refresh_token"]
    assert "no-store" in response.headers.get("cache-control", "")
    me = await http.get(f"{API}/users/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == created["id"]

    # The new refresh token works once more; the used one never again.
    third = await http.post(f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200, third.text
    for used in (first["refresh_token"], second["refresh_token"]):
        again = await http.post(f"{API}/auth/refresh", json={"refresh_token": used})
        assert_problem(again, 401, "invalid_refresh_token")

    for bogus in ("unknown", "x" * 43, first["access_token"]):
        unknown = await http.post(f"{API}/auth/refresh", json={"refresh_token": bogus})
        assert_problem(unknown, 401, "invalid_refresh_token")
    # A refresh token is not an access token.
    as_access = await http.get(f"{API}/users/me", headers=bearer(third.json()["refresh_token"]))
    assert_problem(as_access, 401, "not_authenticated")

    bodies: list[Any] = [{}, {"refresh_token": None}, {"refresh_token": 5}, []]
    for body in bodies:
        bad = await http.post(f"{API}/auth/refresh", json=body)
        assert_problem(bad, 422, "validation_error")


async def test_refresh_token_works_once_under_concurrency(http: httpx.AsyncClient) -> None:
    address = email()
    await register(http, address)
    refresh = (await token(http, address))["refresh_token"]
    responses = await asyncio.gather(
        *(http.post(f"{API}/auth/refresh", json={"refresh_token": refresh}) for _ in range(5))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 401, 401, 401, 401], [r.text for r in responses]
    for response in responses:
        if response.status_code == 401:
            assert_problem(response, 401, "invalid_refresh_token")


PROTECTED = [
    ("GET", f"{API}/users/me"),
    ("POST", f"{API}/referral-codes"),
    ("GET", f"{API}/referral-codes/me"),
    ("DELETE", f"{API}/referral-codes/me"),
    ("GET", f"{API}/users/1/referrals"),
    ("POST", f"{API}/users/me/telegram-link"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_bearer_required(http: httpx.AsyncClient, method: str, path: str) -> None:
    expired = forged_token("1", minutes=-1)
    attempts: list[dict[str, Any]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged_token('1')[:-4]}AAAA"},
    ]
    for headers in attempts:
        response = await http.request(
            method, path, headers=headers, json={"expires_at": in_days(30)}
        )
        assert_problem(response, 401, "not_authenticated")


async def test_access_token_checks(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    body, headers = accounts[0].body, accounts[0].headers
    me = await http.get(f"{API}/users/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["id"] == body["id"]

    valid_for_user = forged_token(str(body["id"]))
    assert (await http.get(f"{API}/users/me", headers=bearer(valid_for_user))).status_code == 200
    rejected = [
        forged_token(str(body["id"]), minutes=-1),  # expired
        forged_token(str(body["id"]), type="refresh"),
        forged_token("999999999"),  # no such user
        forged_token("99999999999999999999999999999999"),  # beyond any integer column
        forged_token("-1"),
        forged_token("abc"),
        forged_token(body["id"]),  # RFC 7519: `sub` is a string
        jwt.encode({"sub": str(body["id"]), "type": "access"}, os.environ["SECRET_KEY"]),
        jwt.encode(
            {"sub": str(body["id"]), "type": "access", "exp": 2**40},
            "another-secret-that-is-long-enough-for-hs256-0123456789",
        ),
        jwt.encode(
            {"sub": str(body["id"]), "type": "access", "exp": 2**40}, key=None, algorithm="none"
        ),
    ]
    for access in rejected:
        response = await http.get(f"{API}/users/me", headers=bearer(access))
        assert_problem(response, 401, "not_authenticated")


# --- referral codes -------------------------------------------------------------------------


async def test_code_lifecycle(http: httpx.AsyncClient) -> None:
    owner, headers = await user(http, "owner", full_name="Owner Name")
    missing = await http.get(f"{API}/referral-codes/me", headers=headers)
    assert_problem(missing, 404, "no_active_code")
    assert_problem(
        await http.delete(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )

    expires = in_days(30)
    response = await http.post(
        f"{API}/referral-codes", json={"expires_at": expires}, headers=headers
    )
    assert response.status_code == 201, response.text
    code = response.json()
    assert set(code) >= {"code", "created_at", "expires_at", "max_uses", "uses", "telegram_link"}
    assert len(code["code"]) >= 8
    assert len(code["code"]) <= 32
    assert CODE_CHARS.match(code["code"])
    assert timestamp(code["expires_at"]) == dt.datetime.fromisoformat(expires)
    timestamp(code["created_at"])
    assert code["max_uses"] is None
    assert code["uses"] == 0
    assert code["telegram_link"] == f"https://t.me/{BOT}?start={code['code']}"

    mine = await http.get(f"{API}/referral-codes/me", headers=headers)
    assert mine.status_code == 200
    assert mine.json() == code

    conflict = await http.post(
        f"{API}/referral-codes", json={"expires_at": in_days(10)}, headers=headers
    )
    assert_problem(conflict, 409, "active_code_exists")

    by_email = await http.get(f"{API}/referral-codes", params={"email": owner["email"]})
    assert by_email.status_code == 200, by_email.text
    assert by_email.json()["code"] == code["code"]
    assert timestamp(by_email.json()["expires_at"]) == timestamp(code["expires_at"])
    by_upper_email = await http.get(
        f"{API}/referral-codes", params={"email": owner["email"].upper()}
    )
    assert by_upper_email.status_code == 200, by_upper_email.text
    assert by_upper_email.json()["code"] == code["code"]

    by_code = await http.get(f"{API}/referral-codes/{code['code']}")
    assert by_code.status_code == 200, by_code.text
    details = by_code.json()
    assert details["code"] == code["code"]
    assert timestamp(details["expires_at"]) == timestamp(code["expires_at"])
    assert details["referrer"] == {"id": owner["id"], "full_name": "Owner Name"} or (
        details["referrer"]["id"] == owner["id"]
        and details["referrer"]["full_name"] == "Owner Name"
    )
    # Codes are case-sensitive.
    swapped = code["code"].swapcase()
    if swapped != code["code"]:
        assert_problem(
            await http.get(f"{API}/referral-codes/{swapped}"), 404, "referral_code_not_found"
        )

    # The generated code signs people up.
    referral = await register(http, email("referral"), referral_code=code["code"])
    assert referral["referrer_id"] == owner["id"]
    after_use = (await http.get(f"{API}/referral-codes/me", headers=headers)).json()
    assert after_use["uses"] == 1

    deleted = await http.delete(f"{API}/referral-codes/me", headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    # Gone at once, everywhere (cache included).
    assert_problem(
        await http.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    assert_problem(
        await http.delete(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    assert_problem(
        await http.get(f"{API}/referral-codes", params={"email": owner["email"]}),
        404,
        "referral_code_not_found",
    )
    assert_problem(
        await http.get(f"{API}/referral-codes/{code['code']}"), 404, "referral_code_not_found"
    )
    late = await http.post(
        f"{API}/auth/register",
        json={"email": email(), "password": PASSWORD, "referral_code": code["code"]},
    )
    assert_problem(late, 400, "referral_code_expired")

    # A new code may follow; the deleted value is never reused.
    again = await http.post(
        f"{API}/referral-codes",
        json={"expires_at": in_days(5), "code": code["code"]},
        headers=headers,
    )
    assert_problem(again, 409, "code_taken")
    fresh = await new_code(http, headers)
    assert fresh["code"] != code["code"]


async def test_custom_codes(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    first, second = accounts[0].headers, accounts[1].headers
    value = unique_code("AbCd")
    created = await new_code(http, first, code=value, max_uses=3)
    assert created["code"] == value
    assert created["max_uses"] == 3
    assert created["telegram_link"] == f"https://t.me/{BOT}?start={value}"

    taken = await http.post(
        f"{API}/referral-codes",
        json={"expires_at": in_days(30), "code": value},
        headers=second,
    )
    assert_problem(taken, 409, "code_taken")
    # Case-sensitive: another case is another code.
    lower = await new_code(http, second, code=value.lower())
    assert lower["code"] == value.lower()
    public = await http.get(f"{API}/referral-codes/{value.lower()}")
    assert public.status_code == 200
    assert public.json()["code"] == value.lower()


async def test_code_limits_inclusive(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    people = [(account.body, account.headers) for account in accounts]
    shortest = f"{uuid.uuid4().hex[:2]}_-"
    longest = ("Z" + uuid.uuid4().hex + "0123456789")[:32]
    assert (await new_code(http, people[0][1], code=shortest))["code"] == shortest
    assert (await new_code(http, people[1][1], code=longest))["code"] == longest
    # At most 365 days ahead, and in the future: just inside both is fine; so is max_uses 1.
    almost = in_days(365 - 1 / 24)
    near_limit = await new_code(http, people[2][1], expires_at=almost, max_uses=1)
    assert timestamp(near_limit["expires_at"]) == dt.datetime.fromisoformat(almost)
    assert near_limit["max_uses"] == 1
    await http.delete(f"{API}/referral-codes/me", headers=people[2][1])
    soon = in_days(1 / 24 / 60)  # a minute from now
    assert timestamp((await new_code(http, people[2][1], expires_at=soon))["expires_at"]) == (
        dt.datetime.fromisoformat(soon)
    )


INVALID_CODE_BODIES: list[dict[str, Any]] = [
    {},
    {"expires_at": None},
    {"expires_at": "2030-01-01T00:00:00"},  # naive
    {"expires_at": (dt.datetime.now() + dt.timedelta(days=3)).isoformat()},  # naive
    {"expires_at": "2030-01-01"},
    {"expires_at": "next week"},
    {"expires_at": in_days(-1)},
    {"expires_at": in_days(-1 / 24 / 60)},
    {"expires_at": in_days(366)},
    {"expires_at": in_days(400)},
    {"expires_at": "9999-12-31T23:59:59Z"},
    {"expires_at": "2030-02-30T00:00:00Z"},
    {"expires_at": "2030-01-01T25:00:00Z"},
    {"expires_at": "2030-01-01T00:00:00+25:00"},
    {"expires_at": 1893456000},
    # A number is no ISO 8601 timestamp (nor has it an offset), even inside the allowed range.
    {"expires_at": int((dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).timestamp())},
    {"expires_at": str(int((dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).timestamp()))},
    {"expires_at": 10**30},
    {"expires_at": True},
    {"expires_at": [in_days(3)]},
    {"code": "abc"},
    {"code": "x" * 33},
    {"code": "has space"},
    {"code": "semi;colon"},
    {"code": "slash/code"},
    {"code": "dot.code"},
    {"code": "ünïcode"},
    {"code": "code\n"},
    {"code": ""},
    {"code": 12345678},
    {"code": "link_abcdef"},
    {"code": "link_"},
    {"max_uses": 0},
    {"max_uses": -1},
    {"max_uses": 1.5},
    {"max_uses": "many"},
    {"max_uses": 10**30},
    {"max_uses": [1]},
    {"max_uses": True},  # JSON has integers; `true` is not one
    {"max_uses": "3"},
    {"max_uses": "1_000"},
]


async def test_create_code_validation(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    headers = accounts[0].headers
    for body in INVALID_CODE_BODIES:
        payload = body if "expires_at" in body or not body else {"expires_at": in_days(30), **body}
        response = await http.post(f"{API}/referral-codes", json=payload, headers=headers)
        assert response.status_code == 422, (payload, response.text)
        assert_problem(response, 422, "validation_error")
    assert_problem(
        await http.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )


@pytest.mark.parametrize("zone", [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))])
async def test_timestamps_with_any_offset(
    http: httpx.AsyncClient, accounts: list[Account], zone: dt.tzinfo
) -> None:
    headers = accounts[0].headers
    expires = in_days(7, tz=zone)
    if zone is dt.UTC:
        expires = expires.replace("+00:00", "Z")
    code = await new_code(http, headers, expires_at=expires)
    # The same instant, written in UTC.
    assert timestamp(code["expires_at"]) == dt.datetime.fromisoformat(expires)


async def test_one_active_code_under_concurrency(
    http: httpx.AsyncClient, accounts: list[Account]
) -> None:
    headers = accounts[0].headers
    responses = await asyncio.gather(
        *(
            http.post(f"{API}/referral-codes", json={"expires_at": in_days(9)}, headers=headers)
            for _ in range(6)
        )
    )
    created = [response for response in responses if response.status_code == 201]
    assert len(created) == 1, [response.text for response in responses]
    for response in responses:
        if response.status_code != 201:
            assert_problem(response, 409, "active_code_exists")
    mine = await http.get(f"{API}/referral-codes/me", headers=headers)
    assert mine.json()["code"] == created[0].json()["code"]


async def test_same_custom_code_under_concurrency(
    http: httpx.AsyncClient, accounts: list[Account]
) -> None:
    people = [(account.body, account.headers) for account in accounts]
    value = unique_code()
    responses = await asyncio.gather(
        *(
            http.post(
                f"{API}/referral-codes",
                json={"expires_at": in_days(9), "code": value},
                headers=headers,
            )
            for _, headers in people
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "code_taken")


async def test_exhausted_code(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    owner, headers = accounts[1].body, accounts[1].headers
    code = await new_code(http, headers, max_uses=1)
    first = await register(http, email(), referral_code=code["code"])
    assert first["referrer_id"] == owner["id"]

    second = await http.post(
        f"{API}/auth/register",
        json={"email": email(), "password": PASSWORD, "referral_code": code["code"]},
    )
    assert_problem(second, 400, "referral_code_exhausted")
    # uses == max_uses: not active any more.
    assert_problem(
        await http.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )
    assert_problem(
        await http.get(f"{API}/referral-codes/{code['code']}"), 404, "referral_code_not_found"
    )
    assert_problem(
        await http.get(f"{API}/referral-codes", params={"email": owner["email"]}),
        404,
        "referral_code_not_found",
    )
    # So the owner may make another one.
    assert (await new_code(http, headers))["code"] != code["code"]


async def test_max_uses_holds_under_concurrency(http: httpx.AsyncClient) -> None:
    owner, headers = await user(http)
    code = await new_code(http, headers, max_uses=2)
    responses = await asyncio.gather(
        *(
            http.post(
                f"{API}/auth/register",
                json={"email": email(), "password": PASSWORD, "referral_code": code["code"]},
            )
            for _ in range(4)
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 201, 400, 400]
    for response in responses:
        if response.status_code == 400:
            assert_problem(response, 400, "referral_code_exhausted")
        else:
            assert response.json()["referrer_id"] == owner["id"]
    listing = await http.get(f"{API}/users/{owner['id']}/referrals", headers=headers)
    assert listing.json()["total"] == 2


async def test_register_with_bad_codes(http: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(
            http.post(
                f"{API}/auth/register",
                json={"email": email(), "password": PASSWORD, "referral_code": value},
            )
            for value in (unique_code(), "abc", "x" * 200, "link_whatever", "has space")
        )
    )
    for response in responses:
        assert_problem(response, 400, "referral_code_invalid")


async def test_same_email_registers_once_under_concurrency(http: httpx.AsyncClient) -> None:
    address = email()
    responses = await asyncio.gather(
        *(
            http.post(
                f"{API}/auth/register",
                json={"email": address if i % 2 else address.upper(), "password": PASSWORD},
            )
            for i in range(3)
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "email_taken")


async def test_lookup_by_email(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    owner = accounts[2].body
    unknown = await http.get(f"{API}/referral-codes", params={"email": email("ghost")})
    no_code = await http.get(f"{API}/referral-codes", params={"email": owner["email"]})
    first = assert_problem(unknown, 404, "referral_code_not_found")
    second = assert_problem(no_code, 404, "referral_code_not_found")
    assert first == second  # the same answer: the lookup does not tell who is registered

    for query in ("", "?email=", "?email=not-an-email", "?mail=a@example.com", "?email=a@"):
        response = await http.get(f"{API}/referral-codes{query}")
        assert_problem(response, 422, "validation_error")


# --- referrals ------------------------------------------------------------------------------


async def test_referral_listing(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    # The superuser command runs in a subprocess: start it now, it is needed last.
    making_admin = asyncio.ensure_future(superuser(http))
    referrer, headers = await user(http, "referrer")
    stranger, stranger_headers = accounts[2].body, accounts[2].headers
    code = await new_code(http, headers)
    joined = [
        await register(http, email(f"ref{i}"), referral_code=code["code"], full_name=f"R{i}")
        for i in range(3)
    ]

    url = f"{API}/users/{referrer['id']}/referrals"
    response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 3
    assert page["limit"] == 50
    assert page["offset"] == 0
    assert [item["id"] for item in page["items"]] == [item["id"] for item in reversed(joined)]
    for item, person in zip(page["items"], reversed(joined), strict=True):
        assert item["email"] == person["email"]
        assert item["full_name"] == person["full_name"]
        assert item["referral_code"] == code["code"]
        assert timestamp(item["created_at"]) == timestamp(person["created_at"])
    stamps = [timestamp(item["created_at"]) for item in page["items"]]
    assert stamps == sorted(stamps, reverse=True)

    first_two = (await http.get(url, params={"limit": 2}, headers=headers)).json()
    assert [item["id"] for item in first_two["items"]] == [joined[2]["id"], joined[1]["id"]]
    assert (first_two["total"], first_two["limit"], first_two["offset"]) == (3, 2, 0)
    rest = (await http.get(url, params={"limit": 2, "offset": 2}, headers=headers)).json()
    assert [item["id"] for item in rest["items"]] == [joined[0]["id"]]
    assert (rest["total"], rest["limit"], rest["offset"]) == (3, 2, 2)
    beyond = (await http.get(url, params={"offset": 10, "limit": 100}, headers=headers)).json()
    assert beyond == {"items": [], "total": 3, "limit": 100, "offset": 10, "next_cursor": None}

    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"offset": -1},
        {"limit": "ten"},
        {"offset": "1.5"},
        {"limit": ""},
    ):
        assert_problem(await http.get(url, params=params, headers=headers), 422, "validation_error")

    # Anyone else: 403, whether or not the user exists.
    assert_problem(await http.get(url, headers=stranger_headers), 403, "forbidden")
    for other_id in (999_999_999, 0, -5, 10**30):
        response = await http.get(f"{API}/users/{other_id}/referrals", headers=stranger_headers)
        assert_problem(response, 403, "forbidden")
    own = await http.get(f"{API}/users/{stranger['id']}/referrals", headers=stranger_headers)
    assert own.status_code == 200
    assert {item["id"] for item in own.json()["items"]}.isdisjoint(p["id"] for p in joined)
    a_referral = bearer((await token(http, joined[0]["email"]))["access_token"])
    assert_problem(await http.get(url, headers=a_referral), 403, "forbidden")

    # A superuser sees anyone's referrals; an unknown id is 404 for them.
    _, admin = await making_admin
    seen = await http.get(url, params={"limit": 1}, headers=admin)
    assert seen.status_code == 200, seen.text
    assert seen.json()["total"] == 3
    assert [item["id"] for item in seen.json()["items"]] == [joined[2]["id"]]
    for other_id in (999_999_999, 0, -5, 10**30):
        response = await http.get(f"{API}/users/{other_id}/referrals", headers=admin)
        assert_problem(response, 404, "user_not_found")
    not_a_number = await http.get(f"{API}/users/abc/referrals", headers=admin)
    assert_client_error(not_a_number)


# --- telegram -------------------------------------------------------------------------------


async def test_telegram_link(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    headers = accounts[0].headers
    before = dt.datetime.now(dt.UTC)
    response = await http.post(f"{API}/users/me/telegram-link", headers=headers)
    assert response.status_code == 201, response.text
    link = response.json()
    match = re.fullmatch(
        rf"https://t\.me/{re.escape(BOT)}\?start=(link_[A-Za-z0-9_-]+)", link["url"]
    )
    assert match, link
    assert len(match.group(1)) <= 64  # Telegram's limit for a /start payload
    expires = timestamp(link["expires_at"])
    assert before + dt.timedelta(minutes=14) < expires < before + dt.timedelta(minutes=16)


async def test_telegram_already_linked(http: httpx.AsyncClient) -> None:
    body, headers = await user(http)
    telegram_id = 7_000_000_000 + body["id"]  # ids above 2**32 exist
    await attach_telegram(body["id"], telegram_id)
    me = await http.get(f"{API}/users/me", headers=headers)
    assert me.json()["telegram_id"] == telegram_id
    response = await http.post(f"{API}/users/me/telegram-link", headers=headers)
    assert_problem(response, 409, "telegram_already_linked")


async def test_degraded_service(degraded_server: str) -> None:
    """No bot configured, the cache down, the outside services silent or refusing: sign-up
    and codes still work; there are no Telegram links, and account linking is a 503."""
    async with httpx.AsyncClient(base_url=degraded_server, timeout=20) as degraded:
        ready = await degraded.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ok",
            "database": "ok",
            "cache": "degraded",
            "jobs": {"oldest_due_seconds": ready.json()["jobs"]["oldest_due_seconds"]},
        }

        started = asyncio.get_running_loop().time()
        owner, headers = await user(degraded, "degraded")
        assert asyncio.get_running_loop().time() - started < 5
        code = await new_code(degraded, headers)
        assert code["telegram_link"] is None
        mine = await degraded.get(f"{API}/referral-codes/me", headers=headers)
        assert mine.json()["telegram_link"] is None
        for _ in range(2):  # a cache miss, then what would have been a hit
            found = await degraded.get(f"{API}/referral-codes", params={"email": owner["email"]})
            assert found.status_code == 200
            assert found.json()["code"] == code["code"]
        joined = await register(degraded, email(), referral_code=code["code"])
        assert joined["referrer_id"] == owner["id"]

        response = await degraded.post(f"{API}/users/me/telegram-link", headers=headers)
        assert_problem(response, 503, "bot_not_configured")

        deleted = await degraded.delete(f"{API}/referral-codes/me", headers=headers)
        assert deleted.status_code == 204
        gone = await degraded.get(f"{API}/referral-codes/{code['code']}")
        assert_problem(gone, 404, "referral_code_not_found")


# --- docs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_from_the_service(http: httpx.AsyncClient, page: str) -> None:
    response = await http.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # A strict Content-Security-Policy: scripts only from the service, none inline.
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, html
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assets += re.findall(r"""spec-url=\s*["']([^"']+)["']""", html)  # ReDoc's schema
    own_scripts = [a for a in assets if a.endswith(".js") and not a.startswith("/static")]
    code = html + "".join([(await http.get(script)).text for script in own_scripts])
    assert any(asset.endswith(".js") for asset in assets), html
    assert "/openapi.json" in code, html
    if page == "/docs":
        assert any(asset.endswith(".css") for asset in assets), html
        assert "/docs/oauth2-redirect" in code, html  # where Authorize comes back to
        assets.append("/docs/oauth2-redirect")
    for asset in assets:
        url = httpx.URL(asset)
        assert not url.is_absolute_url or url.host == "127.0.0.1", asset  # no CDN
        if asset.startswith(("data:", "#")):
            continue
        fetched = await http.get(asset)
        assert fetched.status_code == 200, asset
    assert "cdn.jsdelivr.net" not in html
    assert "unpkg.com" not in html
    assert "fonts.googleapis.com" not in html


async def test_openapi_and_authorize_flow(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    expected = {
        f"{API}/auth/register": "post",
        f"{API}/auth/token": "post",
        f"{API}/auth/refresh": "post",
        f"{API}/users/me": "get",
        f"{API}/referral-codes": "post",
        f"{API}/referral-codes/me": "delete",
        f"{API}/referral-codes/{{code}}": "get",
        f"{API}/users/{{user_id}}/referrals": "get",
        f"{API}/users/me/telegram-link": "post",
        "/health/live": "get",
        "/health/ready": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), path
    assert "get" in paths[f"{API}/referral-codes"]
    assert "get" in paths[f"{API}/referral-codes/me"]

    schemes = schema["components"]["securitySchemes"]
    password_flows = {
        name: scheme["flows"]["password"]
        for name, scheme in schemes.items()
        if scheme["type"] == "oauth2" and "password" in scheme.get("flows", {})
    }
    assert password_flows, schemes
    assert all(flow["tokenUrl"] == f"{API}/auth/token" for flow in password_flows.values())
    for path, method in (
        (f"{API}/users/me", "get"),
        (f"{API}/referral-codes", "post"),
        (f"{API}/referral-codes/me", "get"),
        (f"{API}/referral-codes/me", "delete"),
        (f"{API}/users/{{user_id}}/referrals", "get"),
        (f"{API}/users/me/telegram-link", "post"),
    ):
        security = paths[path][method].get("security", [])
        assert any(set(entry) & set(password_flows) for entry in security), (path, method)

    # What Swagger's Authorize button does, then "Try it out" on a protected endpoint.
    address = accounts[1].email
    authorize = await http.post(
        f"{API}/auth/token",
        content=f"grant_type=password&username={address}&password={PASSWORD.replace(' ', '+')}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json, text/plain, */*",
            "X-Requested-With": "XMLHttpRequest",
        },
    )
    assert authorize.status_code == 200, authorize.text
    granted = authorize.json()
    try_it = await http.get(
        f"{API}/users/me",
        headers={"Authorization": f"{granted['token_type']} {granted['access_token']}"},
    )
    assert try_it.status_code == 200, try_it.text
    assert try_it.json()["email"] == address


# --- malformed input --------------------------------------------------------------------------


def _json_bodies() -> list[bytes]:
    good = f'"email": "{email()}", "password": "{PASSWORD}"'
    return [
        b"",
        b"{",
        b"}",
        b"[]",
        b"null",
        b"true",
        b'"just a string"',
        b"12",
        b"{'email': 'single@quotes.example'}",
        b'{"email": "a@example.com", "password": "correct horse", }',
        ("{" + good + ', "full_name": "\\ud800"}').encode(),
        ("{" + good + ', "full_name": "\\udfff\\ud800"}').encode(),
        ("{" + good + ', "full_name": "nul\\u0000byte"}').encode(),
        ("{" + good + ', "full_name": 1e400}').encode(),
        ("{" + good + ', "full_name": NaN}').encode(),
        ("{" + good + ', "referral_code": "\\ud800abcd"}').encode(),
        ("{" + good + ', "referral_code": "ab\\u0000cd"}').encode(),
        ("{" + good + ', "referral_code": ' + "9" * 5000 + "}").encode(),
        ("{" + good + ', "full_name": "' + "x" * 100_000 + '"}').encode(),
        ("{" + good + ', "referral_code": "' + "x" * 100_000 + '"}').encode(),
        b'{"email": "\\ud800@example.com", "password": "correct horse"}',
        b'{"email": "nul\\u0000@example.com", "password": "correct horse"}',
        b'{"email": "a@example.com", "password": "correct\\u0000horse"}',
        b'{"email": "a@example.com", "password": "\\ud800\\ud800\\ud800\\ud800"}',
        ('{"email": "' + "a" * 100_000 + '@example.com", "password": "correct horse"}').encode(),
        ('{"email": "a@' + "b" * 300 + '.com", "password": "correct horse"}').encode(),
        b'{"email": "a@example.com", "password": "' + b"p" * 1_000_000 + b'"}',
        b'{"email": "a@example.com", "email": "b@example.com", "password": 1}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe\x00{",
        b'{"email": "\xff@example.com", "password": "correct horse"}',
        '{"email": "ü@example.com", "password": "correct horse"}'.encode("latin-1"),
        b"\xef\xbb\xbf{}",  # a byte-order mark
    ]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_malformed_register_bodies(http: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    for body in _json_bodies():
        response = await http.post(f"{API}/auth/register", content=body, headers=headers)
        assert_client_error(response)


async def test_malformed_bodies_elsewhere(http: httpx.AsyncClient, accounts: list[Account]) -> None:
    headers = accounts[0].headers
    json_headers = {**headers, "Content-Type": "application/json"}
    code_bodies = [
        b"{",
        b"[]",
        b'{"expires_at": "\\ud800"}',
        b'{"expires_at": "2030-01-01T00:00:00Z\\u0000"}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "code": "\\ud800abcd"}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "code": "abcd\\u0000"}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "max_uses": 1e400}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "max_uses": NaN}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "max_uses": -Infinity}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "max_uses": ' + b"9" * 5000 + b"}",
        b'{"expires_at": "' + in_days(3).encode() + b'", "max_uses": 99999999999999999999}',
        b'{"expires_at": "' + in_days(3).encode() + b'", "code": "' + b"a" * 100_000 + b'"}',
        b'{"expires_at": "+99999-01-01T00:00:00Z"}',
        b'{"expires_at": "-0001-01-01T00:00:00Z"}',
        b'{"expires_at": "0000-00-00T00:00:00Z"}',
        b'{"expires_at": "2030-01-01T00:00:00+99:99"}',
        b'{"expires_at": 1e400}',
        b'{"expires_at": -1e20}',
        b'{"expires_at": "' + b"9" * 10_000 + b'"}',
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for body in code_bodies:
        response = await http.post(f"{API}/referral-codes", content=body, headers=json_headers)
        assert_client_error(response)
    assert_problem(
        await http.get(f"{API}/referral-codes/me", headers=headers), 404, "no_active_code"
    )

    refresh_bodies = [
        b"{",
        b'{"refresh_token": "\\ud800"}',
        b'{"refresh_token": "\\u0000"}',
        b'{"refresh_token": "' + b"r" * 100_000 + b'"}',
        b'{"refresh_token": 1e400}',
        b'{"refresh_token": {"$ne": null}}',
        b'{"refresh_token": ["a"]}',
    ]
    for body in refresh_bodies:
        response = await http.post(
            f"{API}/auth/refresh", content=body, headers={"Content-Type": "application/json"}
        )
        assert_client_error(response)

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    token_bodies = [
        b"username=a%40example.com&password=%ED%A0%80%ED%A0%80",  # an encoded surrogate
        b"username=%ED%A0%80&password=correct+horse",
        b"username=a%00%40example.com&password=correct+horse",
        b"username=a%40example.com&password=%00",
        b"username=%ff%fe&password=%ff%fe%fd%fc",
        b"username=%zz&password=%",
        b"username=" + b"u" * 100_000 + b"&password=" + b"p" * 100_000,
        b"username=a&username=b&password=x&password=y",
        b"\xff\xfe\xfd",
        b"&&&===&&&",
    ]
    # Each failed sign-in costs a password check: run them side by side.
    responses = await asyncio.gather(
        *(http.post(f"{API}/auth/token", content=body, headers=form) for body in token_bodies)
    )
    for response in responses:
        assert_client_error(response)
    multipart = await http.post(
        f"{API}/auth/token",
        files={
            "username": (None, "a@example.com"),
            "password": (None, "\ud800".encode("utf-8", "surrogatepass")),
        },
    )
    assert_client_error(multipart)


async def test_odd_query_strings_and_paths(
    http: httpx.AsyncClient, accounts: list[Account]
) -> None:
    owner, headers = accounts[0].body, accounts[0].headers
    await new_code(http, headers)
    lookups = [
        f"email={owner['email']}&email=b@example.com",
        f"email=b@example.com&email={owner['email']}",
        "email=%00",
        "email=a%00@example.com",
        "email=%ff%fe",
        "email=%ED%A0%80@example.com",
        "email=%zz",
        "email=%",
        "email=" + "a" * 30_000 + "@example.com",
        "email=a@" + "b" * 1000 + ".com",
        "email[]=a@example.com",
        "email=a@example.com&limit=-1",
        "email=" + "%25" * 1000,
        "email=%F0%9F%92%A9@example.com",
        "email=\u00e9@example.com",
        "=&=&&",
        "email",
    ]
    for query in lookups:
        response = await http.get(f"{API}/referral-codes?{query}")
        assert_not_5xx(response)
        if response.status_code != 200:
            assert_client_error(response)

    code_paths = [
        "%00",
        "%ff",
        "%ED%A0%80abcd",
        "abcd%00",
        "a" * 10_000,
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "a%20b%20c%20d",
        "%F0%9F%92%A9%F0%9F%92%A9",
        "link_abcdefgh",
        "me%00",
        "ab",
        "-" * 32,
    ]
    for segment in code_paths:
        response = await http.get(f"{API}/referral-codes/{segment}")
        assert_not_5xx(response)
        assert_client_error(response)

    user_paths = [
        f"{API}/users/%00/referrals",
        f"{API}/users/1.5/referrals",
        f"{API}/users/1e3/referrals",
        f"{API}/users/-0/referrals",
        f"{API}/users/{'9' * 5000}/referrals",
        f"{API}/users/{owner['id']}/referrals?limit=%00",
        f"{API}/users/{owner['id']}/referrals?limit=1e3",
        f"{API}/users/{owner['id']}/referrals?limit=1&limit=2",
        f"{API}/users/{owner['id']}/referrals?offset={10**30}",
        f"{API}/users/{owner['id']}/referrals?offset={'9' * 5000}",
        f"{API}/users/{owner['id']}/referrals?offset=9223372036854775808",
        f"{API}/users/{owner['id']}/referrals?offset=9223372036854775807",
        f"{API}/users/{owner['id']}/referrals?limit=%ff",
        f"{API}/users/me/referrals",
        f"{API}/users/{owner['id']}/referrals/..",
    ]
    for path in user_paths:
        response = await http.get(path, headers=headers)
        assert_not_5xx(response)

    elsewhere = [
        ("GET", "/nope"),
        ("GET", f"{API}"),
        ("GET", f"{API}/"),
        ("GET", f"{API}/auth/register"),
        ("PUT", f"{API}/auth/register"),
        ("PATCH", f"{API}/referral-codes/me"),
        ("DELETE", f"{API}/users/me"),
        ("POST", "/health/live"),
        ("GET", "/%ff%fe"),
        ("GET", "/" + "x" * 20_000),
        ("OPTIONS", f"{API}/auth/token"),
        ("TRACE", f"{API}/users/me"),
    ]
    for method, path in elsewhere:
        response = await http.request(method, path, headers=headers)
        assert_not_5xx(response)
        assert_client_error(response)


async def test_junk_headers(http: httpx.AsyncClient) -> None:
    authorizations = [
        b"Bearer \xff\xfe",
        b"Bearer " + b"a" * 50_000,
        b"Bearer " + b"a.b.c" * 1000,
        b"bearer lowercase.token.value",
        b"Bearer  two  spaces",
        b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    ]
    for value in authorizations:
        response = await http.get(f"{API}/users/me", headers={b"Authorization": value})
        assert_problem(response, 401, "not_authenticated")
    content_types = [
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "application/xml",
        "\u00e9",
    ]
    body = f'{{"email": "{email()}", "password": "short"}}'.encode()
    for content_type in content_types:
        response = await http.post(
            f"{API}/auth/register",
            content=body,
            headers={b"Content-Type": content_type.encode("latin-1")},
        )
        assert_client_error(response)
