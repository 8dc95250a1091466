"""Shared pieces of the webhook tests: a receiver the test controls and a service harness.

The receiver stands in for a customer's CRM: a real HTTP server on a loopback socket, in a
thread, that records exactly what it received and fails on command.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from tidings.crypto.sealing import Sealer, new_master_key
from tidings.db.engine import make_engine
from tidings.db.uow import Database
from tidings.kit.clock import FrozenClock
from tidings.outbound import OutboundPolicy
from tidings.webhooks.service import WebhookService

WABA = "waba-100"
PHONE = "phone-200"
SECRET = "app-secret-of-waba-100"
VERIFY_TOKEN = "let-me-in"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the receiver answers; change the fields at any time from the test."""

    post_status: int = 200
    post_headers: dict[str, str] = field(default_factory=dict)
    post_body: bytes = b"ok"
    handshake_status: int = 200
    echo_challenge: bool = True
    verify_token: str = VERIFY_TOKEN
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    connections: int = 0  # TCP connections accepted

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r for r in self.received if r.method == "POST" and (path is None or r.path == path)
            ]

    def handle(self, request: Received) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.received.append(request)
        self.arrived.set()
        if request.method == "GET":
            if self.handshake_status != 200:
                return self.handshake_status, {}, b"no"
            token = request.query.get("hub.verify_token", [""])[0]
            if request.query.get("hub.mode") != ["subscribe"] or token != self.verify_token:
                return 403, {}, b"forbidden"
            challenge = request.query.get("hub.challenge", [""])[0]
            return 200, {}, (challenge if self.echo_challenge else "12345").encode()
        return self.post_status, self.post_headers, self.post_body


ReceiverT = TypeVar("ReceiverT", bound=Receiver)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        with self.server.receiver.lock:
            self.server.receiver.connections += 1

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Received(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        status, headers, answer = self.server.receiver.handle(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client closing a kept-alive connection is not news


@contextlib.contextmanager
def serving(state: ReceiverT) -> Iterator[ReceiverT]:
    """`state` answering on a loopback port, bound before this returns."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = state
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver listening before the test starts (the socket is bound up front)."""
    with serving(Receiver()) as state:
        yield state


def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Harness:
    service: WebhookService
    database: Database
    clock: FrozenClock
    secrets: dict[str, str]
    url: str
    sealer: Sealer

    async def secret_for(self, waba_id: str) -> str | None:
        return self.secrets.get(waba_id)

    async def run(self) -> int:
        return await self.service.dispatcher.run_once()


def build_database(url: str) -> Database:
    read_engine = make_engine(url, read_only=True) if url.startswith("sqlite") else None
    return Database(make_engine(url), read_engine)


@pytest.fixture
async def harness(database_url: str, clock: FrozenClock) -> AsyncIterator[Harness]:
    database = build_database(database_url)
    secrets = {WABA: SECRET}
    sealer = Sealer(new_master_key())

    async def secret_for(waba_id: str) -> str | None:
        return secrets.get(waba_id)

    service = WebhookService(database, clock, sealer, secret_for, OutboundPolicy.embedded())
    try:
        yield Harness(service, database, clock, secrets, database_url, sealer)
    finally:
        await service.close()
        await database.dispose()


async def subscribe(harness: Harness, receiver: Receiver, path: str = "/hook") -> None:
    """The usual set-up: the app's callback at `path`, and the app subscribed to the WABA."""
    await harness.service.set_app_callback(receiver.url(path), VERIFY_TOKEN)
    await harness.service.subscribe_app(WABA)


async def enqueue(harness: Harness, value: dict[str, object], phone: str | None = PHONE) -> str:
    async with harness.database.unit_of_work() as uow:
        return await harness.service.enqueue(
            uow, waba_id=WABA, phone_number_id=phone, field="messages", value=value
        )
