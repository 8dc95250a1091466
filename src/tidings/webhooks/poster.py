"""The webhook dispatcher's HTTP client: keep-alive HTTP/1.1 POSTs on asyncio, h11 for the
protocol. Used only to deliver webhooks; handshakes and media links go through httpx
(`tidings.outbound.safe_http_client`).

Why not httpx here: webhooks are POSTed one after the other per target (commit order), four or
so per message, and each httpx POST of a 700-byte event cost about 770 µs of CPU on loopback
(the client's request building, cookies and redirect machinery, then httpcore's pool and anyio
around every read and write); the same exchange here costs 120-150 µs. h11 is the HTTP/1.1
engine httpx itself uses (through httpcore): the framing (chunked, content-length, bodies
delimited by the close, `Connection: close`, HTTP/1.0, 1xx) is its work, not ours.

Every rule of the outbound boundary (`tidings.outbound`) holds for every request:

- the URL: http(s) only, plain http only where the policy allows it, no userinfo, a host (the
  static checks, cached per URL since they depend on nothing else);
- the addresses: a literal IP is checked once per URL (it cannot change); a name is resolved
  again for EVERY request, and every address it resolves to must be allowed, even when a kept
  connection would serve the request;
- the connection goes to a checked address, for https too: TLS then verifies the certificate
  against the URL's name (also sent as SNI), so DNS rebinding between the check and the connect
  cannot reach another address (httpx resolves https names again itself, see outbound.py);
- TLS verification with httpx's trust store (`httpx.create_ssl_context`), ALPN http/1.1;
- one cap on the whole exchange (connect, TLS handshake, request, response): `timeout_s`, so a
  receiver trickling bytes cannot hold a delivery slot;
- the response body is read only up to `max_response_bytes`, then the connection is dropped;
- no redirects (the 3xx is the answer), no proxies, no cookies, no compression asked for.

Connections are kept per (scheme, host, port) and taken again only when the last response was
complete, nothing else arrived, both sides allow reuse (h11 decides), it goes to an address the
current check allowed, and it idled less than `keepalive_s` (httpx's expiry). An idle
connection the server closes, or writes to, is dropped when the event loop sees it. Errors are
httpx's types, so callers map them as before: `OutboundBlocked` (the policy), `httpx.ConnectError`,
`httpx.ReadError`, `httpx.RemoteProtocolError`, and `TimeoutError` for the cap.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import h11
import httpx

from tidings.errors import ValidationFailed
from tidings.kit.clock import monotonic
from tidings.outbound import (
    IPAddress,
    OutboundBlocked,
    OutboundPolicy,
    check_url_syntax,
    literal_address,
    refuse_bad_addresses,
    resolve,
)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Headers = Sequence[tuple[bytes, bytes]]

MAX_HEAD_BYTES = 100 * 1024  # a response's status line and headers (httpcore's limit)
KEEPALIVE_S = 5.0  # httpx's keep-alive expiry
MAX_IDLE = 64  # kept connections over all targets
_MAX_TARGETS = 1024  # parsed URLs remembered


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URL means on the wire, worked out once."""

    scheme: str
    host: str  # resolved, and matched by TLS
    port: int
    origin: tuple[str, str, int]
    request_target: bytes  # path and query, percent-encoded as httpx does
    host_header: bytes
    addresses: tuple[IPAddress, ...] | None  # a literal IP, checked; None: resolve each time


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and its h11 state. Responses are parsed as the bytes arrive,
    in the protocol callbacks; `exchange` waits for the outcome only."""

    def __init__(self, address: IPAddress, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.address = address
        self._limit = limit
        self._loop = loop
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._status = 0
        self._received = 0
        self.lost: asyncio.Future[None] = loop.create_future()
        self.reusable = False
        self.idle_since = 0.0

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the interface without deriving from asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # nothing was asked: the connection cannot be trusted with a request
            return
        self._h11.receive_data(data)
        self._parse(waiter)

    def eof_received(self) -> bool | None:
        self._end_of_input()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        waiter = self._waiter
        if exc is not None and waiter is not None and not waiter.done():
            waiter.set_exception(httpx.ReadError(str(exc) or type(exc).__name__))
        self._end_of_input()
        if not self.lost.done():
            self.lost.set_result(None)

    def _end_of_input(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if not self._status:
            waiter.set_exception(
                httpx.RemoteProtocolError("Server disconnected without sending a response.")
            )
            return
        self._h11.receive_data(b"")  # ends a body delimited by the close, or is an error
        self._parse(waiter)

    def _parse(self, waiter: asyncio.Future[int]) -> None:
        connection = self._h11
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                waiter.set_exception(httpx.RemoteProtocolError(str(exc)))
                return
            kind = type(event)
            if kind is h11.Data:
                self._received += len(event.data)  # type: ignore[union-attr]
                if self._received >= self._limit:  # the rest is never read
                    waiter.set_result(self._status)
                    return
            elif event is h11.NEED_DATA:
                return
            elif kind is h11.Response:
                self._status = event.status_code  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                self.reusable = (
                    connection.our_state is h11.DONE
                    and connection.their_state is h11.DONE
                    and not connection.trailing_data[0]
                )
                waiter.set_result(self._status)
                return
            elif kind is not h11.InformationalResponse:  # 1xx: the answer is still to come
                waiter.set_exception(httpx.RemoteProtocolError(f"unexpected {event!r}"))
                return

    # -- used by the poster -----------------------------------------------------------------

    def usable(self, now: float, expiry: float, addresses: Sequence[IPAddress]) -> bool:
        transport = self._transport
        return (
            self.reusable
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < expiry
            and self.address in addresses
        )

    async def exchange(self, request: h11.Request, body: bytes) -> int:
        """Send one request and wait for its response's status (the body is read and
        dropped, up to the limit)."""
        connection = self._h11
        self.reusable = False
        self._status = 0
        self._received = 0
        try:
            if connection.our_state is h11.DONE:
                connection.start_next_cycle()
            head = connection.send(request) or b""
            data = head + (connection.send(h11.Data(data=body)) or b"")
            connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        transport = self._transport
        if transport is None or transport.is_closing():
            raise httpx.ReadError("the connection was closed")
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiter = waiter
        transport.write(data)
        return await waiter

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()


class WebhookPoster:
    """POSTs to webhook targets under `policy`, keeping connections alive between requests.

    `ssl_context` replaces httpx's default trust store (tests trust their own CA with it);
    `resolver` is the name lookup (tests use it to change what a name resolves to);
    `keepalive_s` is how long a connection may idle and still be used.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = resolve,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._policy = policy
        self._keepalive_s = keepalive_s
        self._ssl_context = ssl_context
        self._resolve = resolver
        self._targets: dict[str, _Target] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._idle_count = 0
        self._next_sweep = 0.0
        self.connections_opened = 0

    @property
    def idle_connections(self) -> int:
        return sum(1 for kept in self._idle.values() for c in kept if not c.lost.done())

    async def post(self, url: str, body: bytes, headers: Headers) -> int:
        """POST `body` to `url` with `headers` (Host and Content-Length are added); returns
        the response status. Raises OutboundBlocked, TimeoutError or another httpx.HTTPError."""
        async with asyncio.timeout(self._policy.timeout_s):
            try:
                target = self._target(url)
                addresses = target.addresses
                if addresses is None:
                    addresses = tuple(await self._resolve(target.host, target.port))
                    refuse_bad_addresses(target.host, addresses, self._policy)
            except ValidationFailed as exc:
                raise OutboundBlocked(exc.message) from exc
            now = monotonic()
            if now >= self._next_sweep:
                self._sweep(now)
            connection = self._kept(target.origin, addresses, now)
            if connection is None:
                connection = await self._connect(target, addresses)
            request = h11.Request(
                method=b"POST",
                target=target.request_target,
                headers=[
                    (b"Host", target.host_header),
                    (b"Content-Length", b"%d" % len(body)),
                    *headers,
                ],
            )
            try:
                status = await connection.exchange(request, body)
            except BaseException:
                connection.abort()
                raise
        if connection.reusable and self._idle_count < MAX_IDLE:
            connection.idle_since = monotonic()
            self._idle.setdefault(target.origin, []).append(connection)
            self._idle_count += 1
        else:
            connection.abort()  # incomplete, over the limit, or closing: never read the rest
        return status

    async def aclose(self) -> None:
        """Close every kept connection."""
        kept = [c for connections in self._idle.values() for c in connections]
        self._idle.clear()
        self._idle_count = 0
        for connection in kept:
            connection.close()
        pending = [c.lost for c in kept if not c.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    # -- internals --------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is not None:
            return target
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValidationFailed(f"not a valid URL: {exc}") from exc
        # The checks read the URL as httpx would send it (IDNA, percent-encoding).
        scheme, host, port = check_url_syntax(str(parsed), self._policy)
        literal = literal_address(host)
        addresses = None
        if literal is not None:
            refuse_bad_addresses(host, [literal], self._policy)
            addresses = (literal,)
        target = _Target(
            scheme,
            host,
            port,
            (scheme, host, port),
            parsed.raw_path,
            parsed.netloc,
            addresses,
        )
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        self._targets[url] = target
        return target

    def _kept(
        self, origin: tuple[str, str, int], addresses: Sequence[IPAddress], now: float
    ) -> _Connection | None:
        kept = self._idle.get(origin)
        while kept:
            connection = kept.pop()  # the most recently used first
            self._idle_count -= 1
            if connection.usable(now, self._keepalive_s, addresses):
                return connection
            connection.abort()
        return None

    def _sweep(self, now: float) -> None:
        """Close connections that idled past the expiry (and forget closed ones)."""
        expiry = self._keepalive_s
        self._next_sweep = now + max(expiry, 1.0)
        for origin, kept in list(self._idle.items()):
            alive = [c for c in kept if now - c.idle_since < expiry and not c.lost.done()]
            for connection in kept:
                if connection not in alive:
                    connection.abort()
            self._idle_count -= len(kept) - len(alive)
            if alive:
                self._idle[origin] = alive
            else:
                del self._idle[origin]

    async def _connect(self, target: _Target, addresses: Sequence[IPAddress]) -> _Connection:
        """A new connection to the first checked address that answers."""
        loop = asyncio.get_running_loop()
        context = self._tls() if target.scheme == "https" else None
        error: Exception | None = None
        for address in addresses:
            try:
                connection = await self._open(loop, target, address, context)
            except (OSError, ValueError) as exc:  # refused, unreachable, TLS (certificate, ...)
                error = exc
                continue
            self.connections_opened += 1
            return connection
        raise httpx.ConnectError(str(error) if error else "no address to connect to")

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        target: _Target,
        address: IPAddress,
        context: ssl.SSLContext | None,
    ) -> _Connection:
        connection = _Connection(address, self._policy.max_response_bytes, loop)
        await loop.create_connection(
            lambda: connection,
            str(address),
            target.port,
            ssl=context,
            server_hostname=target.host if context is not None else None,
        )
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context
