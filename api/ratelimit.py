"""Rate-limit dependencies: each counts by the client address of `api.clients`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.clients import client_address
from core.container import Core
from core.infra.ratelimit import RateLimiter, account_key


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.core.limiter
    return limiter


# Set on a request whose limit was already counted (by `api.routing`'s cached reads): once.
LOOKUP_COUNTED = "referral.lookup_counted"


async def core_for_lookup(request: Request) -> Core:
    """The core, once a public lookup is counted against its client address.

    An enabled limit costs one Redis round trip and a disabled one an attribute check. A
    lookup that missed the cache was already counted by the cached read, which marks it.
    """
    core: Core = request.app.state.core
    limiter = core.limiter
    if limiter.enabled and not request.scope.get(LOOKUP_COUNTED):
        address = client_address(request)
        await limiter.check((limiter.limits.lookup, address))
    return core


# -- logins ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    limiter: RateLimiter
    account: str
    account_at_address: str

    async def succeeded(self) -> None:
        """A correct password clears the account's counts: only failures add up."""
        if self.limiter.enabled:
            limits = self.limiter.limits
            await self.limiter.forget(limits.login_account_address, self.account_at_address)
            await self.limiter.forget(limits.login_account, self.account)


async def limit_login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> LoginAttempt:
    """Logins per account, counted before the password is checked: per account and client
    address together (one guesser), and per account from everywhere (a high ceiling for
    guessing spread over many addresses). A stranger guessing from one address therefore
    never locks the owner out; the address itself is limited too (see `CountedRoute`)."""
    limiter = _limiter(request)
    if not limiter.enabled:
        return LoginAttempt(limiter, "", "")
    account = account_key(form.username)
    address = client_address(request)
    account_at_address = f"{account}@{address}"
    limits = limiter.limits
    # One check for both: a refused attempt counts against neither.
    await limiter.check(
        (limits.login_account_address, account_at_address), (limits.login_account, account)
    )
    return LoginAttempt(limiter, account, account_at_address)


LookupCore = Annotated[Core, Depends(core_for_lookup)]
LoginLimit = Annotated[LoginAttempt, Depends(limit_login)]
