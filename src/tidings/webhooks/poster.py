"""The webhook dispatcher's HTTP client: keep-alive HTTP/1.1 POSTs on asyncio, httptools (llhttp)
to parse the responses. Used only to deliver webhooks; handshakes and media links go through
httpx (`tidings.outbound.safe_http_client`).

Why not httpx here: webhooks are POSTed one after the other per target (commit order), four or
so per message, and each httpx POST of a 700-byte event cost about 770 µs of CPU on loopback
(the client's request building, cookies and redirect machinery, then httpcore's pool and anyio
around every read and write).

Why httptools, not h11 (httpx's own engine, which this client first used): with h11, building
the request (header normalization and validation), `send` and `next_event` were two thirds of
the posting CPU. Measured on one machine, alternating runs: a POST here cost 190-280 µs of CPU
with h11 and 105-135 µs with httptools; in `bench.webhook_cpu` the posting part went from
250-310 to 125-145 µs per webhook. httptools is llhttp, the C parser uvicorn already runs on
(it comes with uvicorn[standard]). The framing is still the parser's work (chunked,
content-length, bodies delimited by the close, `Connection: close`, HTTP/1.0, 1xx); what is
ours is small: the request head is written as bytes (the caller's headers checked as h11 checked
them), a body delimited by the close ends at the end of input (httptools cannot be told of it),
and the limit on the response head (llhttp has none).

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
complete, nothing else arrived, both sides allow reuse (llhttp decides), it goes to an address the
current check allowed, and it idled less than `keepalive_s` (httpx's expiry). An idle
connection the server closes, or writes to, is dropped when the event loop sees it. Errors are
httpx's types, so callers map them as before: `OutboundBlocked` (the policy), `httpx.ConnectError`,
`httpx.ReadError`, `httpx.RemoteProtocolError`, and `TimeoutError` for the cap.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import httptools
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

# A caller's header, as h11 (httpx's engine) checks it: a token for the name, and a value that
# cannot end its line early (no CR, LF or NUL, no surrounding whitespace).
_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
# Written by the poster: a second one from the caller would make the request ambiguous.
_OWN_NAMES = frozenset({b"host", b"content-length", b"transfer-encoding"})
_FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding"})
_MAX_CHECKED_NAMES = 256


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
    """One TCP (or TLS) connection and its response parser. Responses are parsed as the bytes
    arrive, in the protocol callbacks; `exchange` waits for the outcome only."""

    def __init__(self, address: IPAddress, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.address = address
        self._limit = limit
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        # The exchange under way (`exchange` starts each afresh):
        self._status = 0  # the final answer's, once its head is complete (not a 1xx's)
        self._framed = False  # the current message has Content-Length or Transfer-Encoding
        self._received = 0  # body bytes of the answer
        self._done = False  # the answer is read to its end, or up to the limit
        self._head_room = MAX_HEAD_BYTES  # bytes the heads (1xx included) may still take
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
        room = self._head_room
        if not self._status and len(data) > room:
            # httptools keeps a header line in memory until it ends, so it is given no more
            # than the head may still take: by then the head must be complete.
            self._parse(waiter, data[:room])
            if waiter.done():
                self.reusable = False  # what follows the answer is not ours to read
                return
            if not self._status:
                waiter.set_exception(
                    httpx.RemoteProtocolError(
                        f"the response head is longer than {MAX_HEAD_BYTES} bytes"
                    )
                )
                return
            data = data[room:]
        self._head_room = room - len(data)
        self._parse(waiter, data)

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
        elif self._framed:
            waiter.set_exception(
                httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            )
        else:
            # A body framed by neither Content-Length nor chunked ends with the connection
            # (llhttp would say so when told of the end, which httptools cannot do).
            waiter.set_result(self._status)

    def _parse(self, waiter: asyncio.Future[int], data: bytes) -> None:
        error = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # (its message is only an offset)
            error = "the server switched protocols unasked"
        except httptools.HttpParserError as exc:
            error = str(exc) or "the response is not HTTP/1.1"
        if error is not None:
            self.reusable = False
            if not self._done:  # otherwise it is what came after the answer
                waiter.set_exception(httpx.RemoteProtocolError(error))
                return
        if self._done:
            waiter.set_result(self._status)

    # -- httptools callbacks, during `_parse` --------------------------------------------

    def on_message_begin(self) -> None:
        self._framed = False
        if self._done:
            self.reusable = False  # bytes after the answer: the server and we disagree

    def on_header(self, name: bytes, _value: bytes) -> None:
        # Only a body framed by neither may end with the connection (`_end_of_input`).
        if name.lower() in _FRAMING_NAMES:
            self._framed = True

    def on_headers_complete(self) -> None:
        if self._done:
            return  # a head after the answer (already unusable)
        status = self._parser.get_status_code()
        if status >= 200:  # 1xx: the answer is still to come (101 fails as the parser stops)
            self._status = status

    def on_body(self, body: bytes) -> None:
        self._received += len(body)
        if self._received >= self._limit:
            self._done = True  # the rest is never read

    def on_message_complete(self) -> None:
        if self._status and not self._done:
            self._done = True
            self.reusable = self._parser.should_keep_alive()

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

    async def exchange(self, request: bytes) -> int:
        """Send one request (head and body) and wait for its response's status (the body is
        read and dropped, up to the limit)."""
        self.reusable = False
        self._status = 0
        self._framed = False
        self._received = 0
        self._done = False
        self._head_room = MAX_HEAD_BYTES
        transport = self._transport
        if transport is None or transport.is_closing():
            raise httpx.ReadError("the connection was closed")
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiter = waiter
        transport.write(request)
        return await waiter

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()


def _header_lines(headers: Headers, checked_names: set[bytes]) -> bytes:
    """The caller's headers as they go on the wire; refused (`httpx.LocalProtocolError`, as
    h11 did) when one could end its line early or reframe the request. Names already in
    `checked_names` passed before (the dispatcher sends the same few every time)."""
    lines = []
    for name, value in headers:
        if name not in checked_names:
            if _NAME.fullmatch(name) is None or name.lower() in _OWN_NAMES:
                raise httpx.LocalProtocolError(f"Illegal header name {name!r}")
            if len(checked_names) >= _MAX_CHECKED_NAMES:
                checked_names.clear()
            checked_names.add(name)
        if _VALUE.fullmatch(value) is None:
            raise httpx.LocalProtocolError(f"Illegal header value {value!r}")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


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
        self._checked_names: set[bytes] = set()
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
            # Before taking a connection, so that a refused header leaves it untouched. The
            # target and Host come from httpx.URL, which percent-encodes and checks them.
            request = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
                target.request_target,
                target.host_header,
                len(body),
                _header_lines(headers, self._checked_names),
                body,
            )
            now = monotonic()
            if now >= self._next_sweep:
                self._sweep(now)
            connection = self._kept(target.origin, addresses, now)
            if connection is None:
                connection = await self._connect(target, addresses)
            try:
                status = await connection.exchange(request)
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
