"""Password hashing (argon2, off the event loop), access tokens (PyJWT) and opaque tokens."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from core.infra import clock

ALGORITHM = "HS256"
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")

# OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): one core per hash, so a few logins cannot
# take the whole machine (bench/RESULTS.md, "Logins"). Hashes made with other parameters keep
# verifying and are re-hashed with these at the next login.
_hasher = PasswordHash((Argon2Hasher(memory_cost=19 * 1024, time_cost=2, parallelism=1),))
# Verified for unknown accounts, so a login takes as long whether or not the email exists.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def set_hash_cost(*, time_cost: int, memory_cost: int, parallelism: int) -> None:
    """Change the argon2 cost of new hashes (stored hashes keep verifying with their own)."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHash(
        (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism),)
    )
    _DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# At most one hash per core but one runs at once, so the event loop always keeps a core:
# logins queue among themselves instead of starving every other request.
HASHING_SLOTS = max(1, (os.cpu_count() or 2) - 1)
_hashing_slots = asyncio.Semaphore(HASHING_SLOTS)
# The hashing threads run at the lowest priority (SCHED_IDLE, nice 19), the event loop's at the
# process's: when the cores are busy, requests go first and logins take the spare time
# (bench/RESULTS.md, "Logins").
HASHING_NICENESS = 19


def _lower_priority() -> None:
    # Linux: a thread has its own scheduling policy and nice value (0 and its native id name
    # the calling thread). SCHED_IDLE: any other runnable thread preempts it at once. Elsewhere,
    # or when not permitted, hashing keeps the default priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


_hashing_threads = ThreadPoolExecutor(
    HASHING_SLOTS, thread_name_prefix="password-hashing", initializer=_lower_priority
)


async def _hashing(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_hashing_threads, function, *args)


async def hash_password(password: str) -> str:
    async with _hashing_slots:
        hashed: str = await _hashing(_hasher.hash, password)
        return hashed


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user, bot-only user) still spend the time."""
    valid, _ = await verify_and_update(password, password_hash)
    return valid


async def verify_and_update(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check a password; when it is right and was hashed with other parameters, also its
    hash with the current ones (to store in place of the old)."""
    async with _hashing_slots:
        if password_hash is None:
            await _hashing(_hasher.verify, password, _DUMMY_HASH)
            return False, None
        try:
            verdict: tuple[bool, str | None] = await _hashing(
                _hasher.verify_and_update, password, password_hash
            )
            return verdict
        except Exception:  # a corrupt stored hash is a failed login, not a crash
            return False, None


def create_access_token(
    *, user_id: int, secret: str, lifetime: dt.timedelta, version: int = 0
) -> str:
    now = clock.utcnow()
    claims = {
        "sub": str(user_id),
        "type": "access",
        "ver": version,  # the user's token version: raising it ends every token issued before
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    version: int


def decode_access_token(token: str, *, secret: str) -> int | None:
    """The user id in a valid, unexpired access token; None for anything else."""
    claims = decode_access_claims(token, secret=secret)
    return claims.user_id if claims is not None else None


def decode_access_claims(token: str, *, secret: str) -> AccessClaims | None:
    """Who a valid, unexpired access token speaks for, and its token version."""
    verified = _verify_access_token(token, secret)
    return verified[0] if verified is not None and verified[1] > clock.timestamp() else None


class AccessTokens:
    """Reads access tokens, verifying each one's signature once.

    A client sends the same token with every request for the token's whole life, and the
    HMAC and JSON of a check cost more than the query behind it: what a verified token says
    is kept (a bounded number of tokens, forgotten all at once when full), and only its
    expiry is checked again on each use, against the service clock. Tokens that fail are not
    kept, so junk cannot crowd the good ones out.
    """

    def __init__(self, secret: str, *, max_kept: int = 10_000) -> None:
        self._secret = secret
        self._max_kept = max_kept
        self._kept: dict[str, tuple[AccessClaims, float]] = {}

    def claims(self, token: str) -> AccessClaims | None:
        kept = self._kept.get(token)
        if kept is None:
            kept = _verify_access_token(token, self._secret)
            if kept is None:
                return None
            if len(self._kept) >= self._max_kept:
                self._kept.clear()
            self._kept[token] = kept
        claims, expires = kept
        return claims if expires > clock.timestamp() else None


def _verify_access_token(token: str, secret: str) -> tuple[AccessClaims, float] | None:
    """What a well-signed access token says, and when it expires (not checked here)."""
    try:
        # Time claims are checked below against the service clock (the one tests move), not
        # against this host's, so a token from a process whose clock runs ahead still works.
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    exp, sub = claims.get("exp"), claims.get("sub")
    if claims.get("type") != "access" or not isinstance(exp, int | float):
        return None
    # ASCII digits only: str.isdigit() also takes "²" (int() then raises) and "١٢" (which
    # int() reads as 12).
    if not isinstance(sub, str) or _USER_ID.fullmatch(sub) is None:
        return None
    version = claims.get("ver", 0)
    if type(version) is not int or version < 0:
        return None
    return AccessClaims(user_id=int(sub), version=version), float(exp)


def new_opaque_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """Tokens are stored as their SHA-256: a database leak does not leak live tokens."""
    return hashlib.sha256(token.encode()).hexdigest()
