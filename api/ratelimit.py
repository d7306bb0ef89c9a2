"""Rate-limit dependencies and the client address they count by.

The address is the TCP peer. `X-Forwarded-For` is read only when that peer is a trusted proxy
(`RATE_LIMIT_TRUSTED_PROXIES`), walking the header from the right past further trusted
proxies: everything left of the first untrusted hop could have been written by the client, so
a client cannot pick its own address to dodge a limit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from core.container import Core
from core.ratelimit import IPNetwork, RateLimiter, account_key

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# One IPv6 host usually holds a whole /64, so that is what one client is.
_IPV6_CLIENT_PREFIX = 64


def _parse_hop(hop: str) -> IPAddress | None:
    """An address from one X-Forwarded-For entry, with or without a port."""
    hop = hop.strip()
    if hop.startswith("["):  # "[2001:db8::1]:443"
        hop = hop[1 : hop.find("]")]
    elif hop.count(":") == 1:  # "203.0.113.7:443"
        hop = hop.partition(":")[0]
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


def _client_key(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, _IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(address)


def client_address(request: Request, trusted_proxies: tuple[IPNetwork, ...] = ()) -> str:
    """The address a request is counted under."""
    peer = request.client.host if request.client else ""
    if not trusted_proxies and ":" not in peer:
        return peer or "unknown"  # the common case: a plain IPv4 peer, no proxy to consider
    address = _parse_hop(peer)
    if address is None:
        return peer or "unknown"
    if not any(address in network for network in trusted_proxies):
        return _client_key(address)
    hops = [hop for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        forwarded = _parse_hop(hop)
        if forwarded is None:  # garbage where a proxy should have written an address
            break
        address = forwarded
        if not any(address in network for network in trusted_proxies):
            break
    return _client_key(address)


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
        address = client_address(request, limiter.trusted_proxies)
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
    address = client_address(request, limiter.trusted_proxies)
    account_at_address = f"{account}@{address}"
    limits = limiter.limits
    # One check for both: a refused attempt counts against neither.
    await limiter.check(
        (limits.login_account_address, account_at_address), (limits.login_account, account)
    )
    return LoginAttempt(limiter, account, account_at_address)


async def get_client_address(request: Request) -> str:
    """The client address as the rate limits count it (trusted proxies decide the header)."""
    return client_address(request, _limiter(request).trusted_proxies)


ClientAddress = Annotated[str, Depends(get_client_address)]
LookupCore = Annotated[Core, Depends(core_for_lookup)]
LoginLimit = Annotated[LoginAttempt, Depends(limit_login)]
