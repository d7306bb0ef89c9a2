"""Password hashing, access tokens and opaque tokens, below the HTTP layer."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading

import jwt

from core.infra import clock, security

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"


async def test_password_hash_round_trip():
    hashed = await security.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert await security.verify_password("correct horse battery", hashed)
    assert not await security.verify_password("correct horse battery!", hashed)


async def test_no_hash_or_a_corrupt_hash_never_verifies():
    assert not await security.verify_password("anything", None)
    assert not await security.verify_password("anything", "not-a-hash")
    assert not await security.verify_password("anything", "$argon2id$v=19$broken")


def test_access_token_round_trip():
    token = security.create_access_token(
        user_id=42, secret=SECRET, lifetime=dt.timedelta(minutes=15)
    )
    assert security.decode_access_token(token, secret=SECRET) == 42
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42"
    assert claims["type"] == "access"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_access_token_expiry_follows_the_service_clock():
    token = security.create_access_token(
        user_id=42, secret=SECRET, lifetime=dt.timedelta(minutes=15)
    )
    with clock.shift(dt.timedelta(minutes=14, seconds=59)):
        assert security.decode_access_token(token, secret=SECRET) == 42
    with clock.shift(dt.timedelta(minutes=15)):
        assert security.decode_access_token(token, secret=SECRET) is None


def test_access_tokens_that_are_refused():
    now = clock.utcnow()
    good = {"sub": "42", "type": "access", "exp": now + dt.timedelta(minutes=5)}
    refused = [
        jwt.encode(good, "another-secret-that-is-long-enough-too-0123", algorithm="HS256"),
        jwt.encode(good, None, algorithm="none"),
        jwt.encode({**good, "type": "refresh"}, SECRET, algorithm="HS256"),
        jwt.encode({**good, "sub": "forty-two"}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "42", "type": "access"}, SECRET, algorithm="HS256"),
        jwt.encode({"type": "access", "exp": good["exp"]}, SECRET, algorithm="HS256"),
        "",
        "garbage",
        "a.b.c",
    ]
    for token in refused:
        assert security.decode_access_token(token, secret=SECRET) is None, token
    assert security.decode_access_token(jwt.encode(good, SECRET, "HS256"), secret=SECRET) == 42


def test_access_tokens_verify_each_signature_once(monkeypatch):
    verified: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token, *args, **kwargs):
        verified.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    tokens = security.AccessTokens(SECRET, max_kept=2)
    token = security.create_access_token(
        user_id=42, secret=SECRET, lifetime=dt.timedelta(minutes=15), version=3
    )
    for _ in range(5):
        assert tokens.claims(token) == security.AccessClaims(user_id=42, version=3)
    assert verified == [token]
    # Expiry is checked on every use, kept or not.
    with clock.shift(dt.timedelta(minutes=15)):
        assert tokens.claims(token) is None
    assert tokens.claims(token) is not None
    assert verified == [token]


def test_access_tokens_keep_no_refused_token_and_stay_bounded():
    tokens = security.AccessTokens(SECRET, max_kept=3)
    forged = jwt.encode(
        {"sub": "42", "type": "access", "exp": clock.utcnow() + dt.timedelta(minutes=5)},
        "another-secret-that-is-long-enough-too-0123",
        algorithm="HS256",
    )
    for _ in range(3):
        assert tokens.claims(forged) is None
    assert tokens._kept == {}
    issued = [
        security.create_access_token(user_id=n, secret=SECRET, lifetime=dt.timedelta(minutes=5))
        for n in range(1, 11)
    ]
    for n, token in enumerate(issued, start=1):
        assert tokens.claims(token) == security.AccessClaims(user_id=n, version=0)
        assert len(tokens._kept) <= 3


def test_opaque_tokens_and_their_digest():
    tokens = {security.new_opaque_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 40
    digest = security.token_digest(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert len(digest) == 64
    assert security.token_digest(token) == digest
    assert security.token_digest(token + "x") != digest


async def test_a_hash_with_older_parameters_is_renewed_at_login(client, core, register):
    """Stored hashes keep verifying whatever their parameters; a login re-hashes them."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    from core.users.models import User
    from tests.conftest import API, PASSWORD

    user = await register("old.hash@example.com")
    old = PasswordHash((Argon2Hasher(memory_cost=8 * 1024, time_cost=3, parallelism=2),))
    old_hash = old.hash(PASSWORD)
    await User.objects.filter(id=user["id"]).update(password_hash=old_hash)

    response = await client.post(
        f"{API}/auth/token", data={"username": "old.hash@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    renewed = (await User.objects.get(id=user["id"])).password_hash
    assert renewed != old_hash
    assert await security.verify_password(PASSWORD, renewed)


async def test_passwords_are_hashed_below_the_event_loops_priority():
    """A login's hashing yields the cores to answering requests when both want them."""
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    hashing = await security._hashing(
        lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    )
    assert hashing >= security.HASHING_NICENESS > own
