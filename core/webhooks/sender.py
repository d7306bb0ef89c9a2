"""One delivery attempt: a signed POST to an endpoint's address, checked against SSRF.

The host is resolved here and the request goes to the address that was checked (the Host
header and TLS name stay the URL's), so a DNS answer that changes between the check and the
connection (rebinding) cannot point a delivery inside the network. Redirects are not followed
and at most `MAX_RESPONSE_BYTES` of an answer are read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

MAX_RESPONSE_BYTES = 1024
USER_AGENT = "referral-service-webhooks/1.0"


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    response_status: int | None = None
    error: str | None = None


def signature(*, secrets: list[str], message_id: str, timestamp: dt.datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,` signature per live secret."""
    return " ".join(
        Webhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=body)
        for secret in secrets
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one leads to: mapped, IPv4-compatible, 6to4, NAT64 and
    Teredo (its server and its client) forms."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a delivery may not go to this address (None: it may). An IPv6 address that embeds
    an IPv4 one is judged by what it embeds too, so no tunnel form reaches inside."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        for inner in embedded_ipv4(address):
            reason = refused_address(inner)
            if reason is not None:
                return f"embeds {inner} ({reason})"
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    for reason, hit in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    ):
        if hit:
            return reason
    return None


class Sender:
    def __init__(self, *, timeout: float, allow_private_networks: bool) -> None:
        self.timeout = timeout
        self.allow_private_networks = allow_private_networks
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the address checked is the one used
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, *, url: str, message_id: str, body: str, secrets: list[str]) -> Attempt:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._send(url, message_id, body, secrets)
        except TimeoutError:
            return Attempt(ok=False, error=f"no answer within {self.timeout:g} s")

    async def _send(self, url: str, message_id: str, body: str, secrets: list[str]) -> Attempt:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            return Attempt(ok=False, error="not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            return Attempt(ok=False, error=f"cannot resolve {host}: {exc}")
        address = None
        refusal = None
        for info in infos:
            candidate = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            reason = None if self.allow_private_networks else refused_address(candidate)
            if reason is None:
                address = candidate
                break
            refusal = refusal or (
                f"address {candidate} is {reason}: refused "
                "(WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows it)"
            )
        if address is None:
            return Attempt(ok=False, error=refusal or f"no address for {host}")
        literal = f"[{address}]" if address.version == 6 else str(address)
        target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        headers = {
            "host": parts.netloc.rsplit("@", 1)[-1],
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature(
                secrets=secrets, message_id=message_id, timestamp=now, body=body
            ),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = self._client.build_request(
            "POST", target, content=body.encode(), headers=headers, extensions=extensions
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return Attempt(
                ok=False, error=f"{type(exc).__name__}: {exc}"[:500] or "connection failed"
            )
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
        except httpx.HTTPError:
            pass  # the status is what counts; a broken body after it changes nothing
        finally:
            await response.aclose()
        if 200 <= response.status_code < 300:
            return Attempt(ok=True, response_status=response.status_code)
        return Attempt(
            ok=False, response_status=response.status_code, error=f"HTTP {response.status_code}"
        )
