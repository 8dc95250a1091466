"""The outbound-request security boundary: every URL a customer gives us passes through here.

Webhook callbacks (and later media fetched by link) make the server send requests to addresses
chosen by someone else. Without a boundary that is server-side request forgery: a callback of
`http://169.254.169.254/` or `http://10.0.0.5:5432/` turns the server into a proxy into its own
network. The rules:

- only http(s); plain http only when the policy allows it; no `user:pass@` in URLs;
- every address the host RESOLVES to must be public (unless the policy allows private or
  loopback): loopback, RFC 1918, link-local, multicast, reserved, unspecified, CGNAT
  (100.64/10) and IPv6 forms that embed such an IPv4 address (mapped, 6to4, NAT64) are refused;
- no redirects are followed, no proxy from the environment is used, responses are read only up
  to `max_response_bytes`.

`safe_http_client` checks again at request time, just before connecting (DNS may have changed
since the URL was accepted). For plain http the request is then sent to the very IP that was
checked (the Host header keeps the name), so DNS rebinding cannot slip in between the check and
the connection. For https the name is resolved again by the connection itself, so a rebinding
attacker can win the race and reach a private address, but only as far as a TCP connect and a
TLS handshake: the private server cannot present a valid certificate for the attacker's name,
so no request byte is sent. That residual (a blind connect, usable for port probing) is
accepted; closing it needs pinning the IP with `sni_hostname` per connection, which breaks
connection pooling by name.

Webhook deliveries, the bulk of outbound requests, do not use httpx: `webhooks/poster.py` applies
these same checks (`check_url_syntax`, `resolve`, `refuse_bad_addresses`) before every request
on its own keep-alive connections, and pins https connections to the checked address too (its
pool is its own, so the residual above does not apply to it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from tidings.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Shared address space for carrier-grade NAT: not "private" to Python, but not public either.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# NAT64 well-known prefix: the last 32 bits are an IPv4 address reached through the translator.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class OutboundPolicy:
    """What outbound requests may reach.

    `allow_private` opens every non-public address (a trusted LAN deployment); `allow_loopback`
    opens only this machine (a developer trying things on one box).
    """

    allow_http: bool = False
    allow_private: bool = False
    timeout_s: float = 10.0
    max_response_bytes: int = 64 * 1024
    allow_loopback: bool = False

    @classmethod
    def production(cls) -> OutboundPolicy:
        """https only, public addresses only."""
        return cls(allow_http=False, allow_private=False, allow_loopback=False)

    @classmethod
    def embedded(cls) -> OutboundPolicy:
        """http allowed and this machine reachable: a developer's single-box setup."""
        return cls(allow_http=True, allow_private=False, allow_loopback=True)


class OutboundBlocked(httpx.TransportError):
    """Raised by the guarded transport when a request's destination breaks the policy."""


def address_problem(address: IPAddress, policy: OutboundPolicy) -> str | None:
    """Why `address` may not be contacted under `policy`, or None if it may."""
    if policy.allow_private:
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        problem = address_problem(embedded, policy)
        return f"{problem} (embedded in {address})" if problem else None
    if address.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it stands for one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address, as the relay would reach it
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse_address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")


def literal_address(host: str) -> IPAddress | None:
    """The address `host` is when it is a literal IP (no lookup needed, never changes)."""
    try:
        return _parse_address(host)
    except ValueError:
        return None


def check_url_syntax(url: str, policy: OutboundPolicy) -> tuple[str, str, int]:
    """The static checks: scheme, userinfo, host present. Returns (scheme, host, port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationFailed("the URL must use https (or http where allowed)")
    if scheme == "http" and not policy.allow_http:
        raise ValidationFailed("the URL must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationFailed("the URL must not contain a user name or password")
    host = parts.hostname
    if not host:
        raise ValidationFailed("the URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal IP resolves to itself)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationFailed(f"the host {host!r} cannot be resolved") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonical, sockaddr in infos:
        address = _parse_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ValidationFailed(f"the host {host!r} cannot be resolved")
    return addresses


def refuse_bad_addresses(host: str, addresses: Iterable[IPAddress], policy: OutboundPolicy) -> None:
    """ValidationFailed unless the policy allows every one of `addresses`."""
    # Every address counts: a name with one public and one private record would otherwise let
    # the connection pick the private one.
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            raise ValidationFailed(f"the host {host!r} resolves to {problem}, which is not allowed")


async def check_url(url: str, policy: OutboundPolicy) -> None:
    """Refuse `url` (ValidationFailed with the reason) unless the policy lets us contact it."""
    _scheme, host, port = check_url_syntax(url, policy)
    refuse_bad_addresses(host, await resolve(host, port), policy)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Re-checks the destination of every request right before it is sent (see module doc)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: OutboundPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            scheme, host, port = check_url_syntax(str(request.url), self._policy)
            addresses = await resolve(host, port)
            refuse_bad_addresses(host, addresses, self._policy)
        except ValidationFailed as exc:
            raise OutboundBlocked(exc.message, request=request) from exc
        if scheme == "http":
            # Connect to the address we checked, not to whatever the name resolves to next.
            # httpx already put the original name in the Host header.
            request.url = request.url.copy_with(host=str(addresses[0]))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def safe_http_client(
    policy: OutboundPolicy, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """An httpx client bound by `policy`. `transport` is the seam tests swap (it is wrapped, so
    the policy holds for it too)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(transport or httpx.AsyncHTTPTransport(), policy),
        follow_redirects=False,
        trust_env=False,  # an environment proxy would connect on our behalf, unchecked
        timeout=httpx.Timeout(policy.timeout_s),
    )


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` bytes of a streamed response body; the rest is never read."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) >= limit:
            break
    return bytes(body[:limit])
