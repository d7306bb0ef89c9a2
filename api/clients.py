"""The client address of a request, the one rate limits, review, the audit log and error
logs all use.

It is the TCP peer. `X-Forwarded-For` is read only when that peer is a trusted proxy
(`TRUSTED_PROXIES`), walking the header from the right past further trusted proxies:
everything left of the first untrusted hop could have been written by the client, so a client
cannot pick its own address. Behind a proxy that is not listed, every client is the proxy:
limits count them together and review sees one network for all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
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


def client_address(request: Request) -> str:
    """The request's client: the TCP peer, or what trusted proxies say it forwarded for."""
    trusted_proxies: tuple[IPNetwork, ...] = request.app.state.trusted_proxies
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


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


ClientAddress = Annotated[str, Depends(client_address)]
