"""The webhook poster over real loopback sockets: keep-alive, framing, closes, limits, the
whole-exchange cap, TLS, and the outbound policy on every request.

The receivers here are scripted asyncio servers that answer with raw bytes, so each test says
exactly what goes over the wire. Every test runs on asyncio's loop and on uvloop (`tidings
serve` runs on uvloop), see tests/conftest.py. Names are resolved by a resolver the test passes, so
no test needs DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h11
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tidings.outbound import IPAddress, OutboundBlocked, OutboundPolicy
from tidings.webhooks.poster import WebhookPoster

LOOPBACK = OutboundPolicy(allow_http=True, allow_loopback=True, timeout_s=5.0)
HEADERS = ((b"Content-Type", b"application/json"), (b"X-Hub-Signature-256", b"sha256=00ff"))
BODY = b'{"object":"whatsapp_business_account","entry":[]}'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Seen:
    connection: int
    method: bytes
    target: bytes
    headers: dict[bytes, bytes]
    body: bytes


Respond = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


def answer(raw: bytes) -> Respond:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)

    return respond


@dataclass
class Receiver:
    """A loopback server: parses each request with h11 and lets `respond` write the answer."""

    respond: Respond
    port: int = 0
    connections: int = 0
    seen: list[Seen] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        pending = b""
        try:
            while not writer.is_closing():
                parser = h11.Connection(h11.SERVER)
                if pending:  # (b"" would tell h11 the client closed)
                    parser.receive_data(pending)
                request: h11.Request | None = None
                body = bytearray()
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(65536)
                        if not data:
                            return
                        parser.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                pending = parser.trailing_data[0]
                seen = Seen(index, request.method, request.target, dict(request.headers), body)
                self.seen.append(seen)
                await self.respond(seen, writer)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client dropped the connection (over the limit, timed out)
        finally:
            writer.close()


@asynccontextmanager
async def receiver(
    respond: Respond, context: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    state = Receiver(respond)
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in state.tasks:  # handlers still answering (trickling, hanging)
            task.cancel()
        await asyncio.gather(*state.tasks, return_exceptions=True)


@asynccontextmanager
async def poster(
    policy: OutboundPolicy = LOOPBACK, **kwargs: object
) -> AsyncIterator[WebhookPoster]:
    client = WebhookPoster(policy, **kwargs)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        await client.aclose()


Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


def resolver_to(*answers: list[str]) -> tuple[Resolver, list[str]]:
    """A resolver answering each lookup with the next of `answers` (the last one repeats)."""
    asked: list[str] = []

    async def resolve(host: str, _port: int) -> list[IPAddress]:
        asked.append(host)
        texts = answers[min(len(asked), len(answers)) - 1]
        return [ipaddress.ip_address(t) for t in texts]

    return resolve, asked


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (yields to it, does not wait for time)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


# -- the exchange ---------------------------------------------------------------------------


async def test_posts_share_one_kept_connection_and_carry_host_length_and_headers() -> None:
    async with receiver(answer(OK)) as server, poster() as client:
        for _ in range(3):
            assert await client.post(server.url("/hook?a=1&b=%C3%A9"), BODY, HEADERS) == 200
    assert server.connections == 1
    assert [s.connection for s in server.seen] == [0, 0, 0]
    first = server.seen[0]
    assert (first.method, first.target, first.body) == (b"POST", b"/hook?a=1&b=%C3%A9", BODY)
    assert first.headers[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert first.headers[b"content-length"] == str(len(BODY)).encode()
    assert first.headers[b"content-type"] == b"application/json"
    assert first.headers[b"x-hub-signature-256"] == b"sha256=00ff"
    assert b"accept-encoding" not in first.headers  # nothing compressed comes back


async def test_a_chunked_answer_is_read_to_its_end_and_the_connection_kept() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    async with receiver(answer(chunked)) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 1


async def test_informational_answers_are_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    async with receiver(answer(raw)) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 204
        assert await client.post(server.url(), BODY, HEADERS) == 204
    assert server.connections == 1


async def test_connection_close_is_honoured_even_if_the_server_keeps_the_socket_open() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with receiver(answer(raw)) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert client.idle_connections == 0
    assert server.connections == 2


async def test_an_http10_body_delimited_by_the_close_is_read_to_the_close() -> None:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthanks")
        writer.close()

    async with receiver(respond) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 2


async def test_a_kept_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(OK)  # keep-alive on the face of it, then the server's idle timeout
        await writer.drain()
        writer.close()

    async with receiver(respond) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        await until(lambda: client.idle_connections == 0)  # the poster saw the close
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 2


async def test_a_kept_connection_that_receives_unasked_bytes_is_dropped() -> None:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(OK + b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    async with receiver(respond) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        await until(lambda: client.idle_connections == 0)
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 2


async def test_connections_idle_past_the_keep_alive_expiry_are_not_used() -> None:
    async with receiver(answer(OK)) as server, poster(keepalive_s=0.0) as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 2


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_oversized_answer_is_read_only_up_to_the_limit(framing: str) -> None:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
            chunk = b"x" * 16384
        for _ in range(100):  # 1.6 MB and never the end: the client must stop by itself
            writer.write(chunk)
            await writer.drain()
        await asyncio.Event().wait()

    policy = OutboundPolicy(allow_http=True, allow_loopback=True, max_response_bytes=1000)
    async with receiver(respond) as server, poster(policy) as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert client.idle_connections == 0  # the rest of that answer is never read
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 2


async def test_a_redirect_is_the_answer_and_is_not_followed() -> None:
    raw = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    async with receiver(answer(raw)) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 302
    assert [s.target for s in server.seen] == [b"/hook"]


# -- failures ---------------------------------------------------------------------------------


async def test_a_trickling_answer_is_cut_at_the_whole_exchange_cap() -> None:
    sent = 0

    async def trickle(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        while True:  # a byte well within any per-read timeout, forever
            writer.write(b"x")
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.02)  # the receiver's pace; the test waits for the cap only

    policy = OutboundPolicy(allow_http=True, allow_loopback=True, timeout_s=0.3)
    loop = asyncio.get_running_loop()
    async with receiver(trickle) as server, poster(policy) as client:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.post(server.url(), BODY, HEADERS)
        assert 0.25 <= loop.time() - started < 2.0  # (uvloop's clock counts milliseconds)
        assert client.idle_connections == 0
    assert sent > 3  # each byte came sooner than the cap: only the whole-exchange cap fired


async def test_a_receiver_that_never_answers_times_out() -> None:
    policy = OutboundPolicy(allow_http=True, allow_loopback=True, timeout_s=0.2)
    with socket.socket() as listening:  # accepts connections in the backlog, never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        async with poster(policy) as client:
            with pytest.raises(TimeoutError):
                await client.post(f"http://127.0.0.1:{port}/hook", BODY, HEADERS)


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with poster() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/hook", BODY, HEADERS)


async def test_a_server_closing_without_an_answer_is_a_protocol_error() -> None:
    async def hang_up(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with receiver(hang_up) as server, poster() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.post(server.url(), BODY, HEADERS)


@pytest.mark.parametrize(
    "raw",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then the close
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n wo",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",  # and never the answer
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
    ],
    ids=[
        "not-http",
        "truncated-body",
        "truncated-chunks",
        "oversized-headers",
        "informational-only",
        "unasked-upgrade",
    ],
)
async def test_broken_answers_are_protocol_errors(raw: bytes) -> None:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        writer.close()

    async with receiver(respond) as server, poster() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url(), BODY, HEADERS)
        assert client.idle_connections == 0


@pytest.mark.parametrize("complete", [True, False], ids=["whole", "endless"])
async def test_an_oversized_head_is_a_protocol_error_on_an_open_connection(complete: bool) -> None:
    async def respond(_seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: " + b"a" * 200_000)
        if complete:
            writer.write(b"\r\n\r\nok")
        await writer.drain()
        await asyncio.Event().wait()  # the client must stop by itself

    async with receiver(respond) as server, poster() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="head is longer"):
            await client.post(server.url(), BODY, HEADERS)
        assert client.idle_connections == 0


async def test_a_long_head_within_the_limit_is_read_with_the_body_behind_it() -> None:
    # Status line and headers of nearly 100 KB and a 50 KB body, in one write: the head
    # limit cuts the bytes it inspects, not the answer.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\nX-Big: " + b"a" * 100_000
    raw = head + b"\r\n\r\n" + b"x" * 50_000
    async with receiver(answer(raw)) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        assert client.idle_connections == 1
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"X-Note", b"a\r\nX-Injected: 1"),
        (b"X-Note", b"a\nb"),
        (b"X-Note", b"a\rb"),
        (b"X-Note", b"a\x00b"),
        (b"X-Note", b" padded"),
        (b"X-Note\r\nX-Injected", b"1"),
        (b"X-Note:", b"a"),
        (b"X Note", b"a"),
        (b"", b"a"),
        (b"Content-Length", b"0"),
        (b"transfer-encoding", b"chunked"),
        (b"Host", b"elsewhere.example"),
    ],
)
async def test_a_header_that_could_end_its_line_or_reframe_the_request_is_never_sent(
    name: bytes, value: bytes
) -> None:
    async with receiver(answer(OK)) as server, poster() as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200
        with pytest.raises(httpx.LocalProtocolError):
            await client.post(server.url(), BODY, (*HEADERS, (name, value)))
        assert client.idle_connections == 1  # the kept connection was left as it was
        assert await client.post(server.url(), BODY, HEADERS) == 200
    assert server.connections == 1
    assert len(server.seen) == 2


# -- the outbound policy, on every request --------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "url", "reason"),
    [
        (OutboundPolicy.production(), "https://127.0.0.1:{port}/hook", "loopback"),
        (OutboundPolicy.production(), "http://127.0.0.1:{port}/hook", "must use https"),
        (OutboundPolicy.production(), "ftp://127.0.0.1:{port}/hook", "https"),
        (LOOPBACK, "http://user:pw@127.0.0.1:{port}/hook", "user name or password"),
        (LOOPBACK, "http://10.0.0.1:{port}/hook", "private"),
        (LOOPBACK, "http://[::ffff:169.254.169.254]:{port}/", "link-local"),
    ],
)
async def test_the_policy_refuses_before_any_connection(
    policy: OutboundPolicy, url: str, reason: str
) -> None:
    async with receiver(answer(OK)) as server, poster(policy) as client:
        for _ in range(2):  # the second time from the cached target, refused all the same
            with pytest.raises(OutboundBlocked, match=reason):
                await client.post(url.format(port=server.port), BODY, HEADERS)
    assert server.connections == 0


async def test_a_name_is_checked_again_before_every_request_even_on_a_kept_connection() -> None:
    resolve, asked = resolver_to(["127.0.0.1"], ["127.0.0.1", "10.0.0.7"])
    async with receiver(answer(OK)) as server, poster(resolver=resolve) as client:
        url = server.url(host="hooks.example")
        assert await client.post(url, BODY, HEADERS) == 200
        assert client.idle_connections == 1
        with pytest.raises(OutboundBlocked, match="private"):
            await client.post(url, BODY, HEADERS)
    assert asked == ["hooks.example", "hooks.example"]
    assert len(server.seen) == 1


async def test_the_connection_goes_to_the_checked_address_with_the_name_in_host() -> None:
    # "hooks.example" exists nowhere but in this resolver: only the checked address is reached.
    resolve, _asked = resolver_to(["127.0.0.1"], ["127.0.0.2"])
    async with receiver(answer(OK)) as server, poster(resolver=resolve) as client:
        url = server.url(host="hooks.example")
        assert await client.post(url, BODY, HEADERS) == 200
        # The name moved: the kept connection (to 127.0.0.1) is not the checked address any
        # more, so a new one goes to 127.0.0.2, where nothing listens.
        with pytest.raises(httpx.ConnectError):
            await client.post(url, BODY, HEADERS)
    assert server.seen[0].headers[b"host"] == f"hooks.example:{server.port}".encode()


async def test_a_literal_address_is_never_looked_up() -> None:
    async def no_lookup(host: str, _port: int) -> list[IPAddress]:
        raise AssertionError(f"looked up {host}")

    async with receiver(answer(OK)) as server, poster(resolver=no_lookup) as client:
        assert await client.post(server.url(), BODY, HEADERS) == 200


# -- TLS --------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca: Path
    chain: Path
    key: Path

    def server(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.chain, self.key)
        return context

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and a server certificate for hooks.example only (not for 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)

    def build(
        subject: str,
        issuer: x509.Name | None,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("hooks.example")]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Tidings test CA", None, ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build("hooks.example", ca.subject, key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    files = Certificates(folder / "ca.pem", folder / "chain.pem", folder / "key.pem")
    files.ca.write_bytes(ca.public_bytes(pem))
    files.chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    files.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


HTTPS_LOOPBACK = OutboundPolicy(allow_loopback=True, timeout_s=5.0)  # https only


async def test_https_verifies_the_name_on_the_checked_address_and_keeps_the_connection(
    certificates: Certificates,
) -> None:
    resolve, _asked = resolver_to(["127.0.0.1"])
    async with (
        receiver(answer(OK), certificates.server()) as server,
        poster(HTTPS_LOOPBACK, ssl_context=certificates.client(), resolver=resolve) as client,
    ):
        url = server.url(host="hooks.example", scheme="https")
        assert await client.post(url, BODY, HEADERS) == 200
        assert await client.post(url, BODY, HEADERS) == 200
    assert server.connections == 1
    assert server.seen[0].headers[b"host"] == f"hooks.example:{server.port}".encode()


async def test_https_refuses_a_certificate_for_another_name(certificates: Certificates) -> None:
    async with (
        receiver(answer(OK), certificates.server()) as server,
        poster(HTTPS_LOOPBACK, ssl_context=certificates.client()) as client,
    ):
        with pytest.raises(httpx.ConnectError, match=r"certificate|match|IP address"):
            await client.post(server.url(scheme="https"), BODY, HEADERS)  # 127.0.0.1
    assert server.seen == []


async def test_https_refuses_a_certificate_no_trusted_authority_signed(
    certificates: Certificates,
) -> None:
    resolve, _asked = resolver_to(["127.0.0.1"])
    async with (
        receiver(answer(OK), certificates.server()) as server,
        poster(HTTPS_LOOPBACK, resolver=resolve) as client,  # the default trust store
    ):
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await client.post(server.url(host="hooks.example", scheme="https"), BODY, HEADERS)
    assert server.seen == []
