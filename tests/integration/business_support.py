"""Fixtures for Business API tests: a provisioned business, a webhook receiver (the customer's
CRM: the outer edge, so the test runs it), pywa pointed at our server, and SDK customers.

A test module uses the shared fixtures by naming them at module level, e.g.
`receiver = business_support.receiver`."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from pywa import WhatsApp
from sqlalchemy import func, select

from conftest import run_in_thread, serving
from tidings.business.models import BusinessMessage
from tidings.business.service import Provisioned
from tidings.cli.business import _create, _webhook
from tidings.config import Settings
from tidings.kit.clock import Clock
from tidings.runtime import Runtime, build_runtime
from tidings.sdk import DeviceClient


@dataclass
class Received:
    body: bytes
    signature: str | None

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every webhook POST; answers Meta's GET handshake; can be told to fail."""

    verify_token: str = "verify-me"
    fail_with: int | None = None
    posts: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def wait_for(self, predicate, timeout: float = 20.0) -> list[Received]:
        """Block until `predicate(posts)` holds (the receiver thread notifies on each POST)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: predicate(self.posts), timeout):
                raise AssertionError(f"webhooks not received in time; got {len(self.posts)}")
            return list(self.posts)

    def changes(self) -> list[dict[str, Any]]:
        return [
            change["value"]
            for post in self.posts
            for entry in post.json["entry"]
            for change in entry["changes"]
        ]

    def statuses(self) -> list[dict[str, Any]]:
        return [s for value in self.changes() for s in value.get("statuses", [])]

    def messages(self) -> list[dict[str, Any]]:
        return [m for value in self.changes() for m in value.get("messages", [])]


def start_receiver(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            if query.get("hub.verify_token") == [receiver.verify_token]:
                body = query.get("hub.challenge", [""])[0].encode()
                self.send_response(200)
            else:
                body = b"forbidden"
                self.send_response(403)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if receiver.fail_with is not None:
                self.send_response(receiver.fail_with)
                self.end_headers()
                return
            with receiver.arrived:
                receiver.posts.append(Received(body, self.headers.get("x-hub-signature-256")))
                receiver.arrived.notify_all()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The business's webhook endpoint, running for the test."""
    made = Receiver()
    httpd = start_receiver(made)
    yield made
    httpd.shutdown()


def provision_shop(
    settings: Settings,
    receiver: Receiver | None = None,
    phone: str = "+15550109999",
    name: str = "Acme Shop",
) -> Provisioned:
    """A business made as `tidings business create` makes it; its webhooks go to `receiver`."""
    made = run_in_thread(lambda: _create(settings, name, phone))
    if receiver is not None:
        run_in_thread(
            lambda: _webhook(settings, made.phone_number_id, receiver.url, receiver.verify_token)
        )
    return made


def pywa_client(made: Provisioned, server_url: str) -> WhatsApp:
    """pywa, as the business would run it, talking to our server."""
    return WhatsApp(
        phone_id=made.phone_number_id,
        token=made.access_token,
        session=httpx.Client(transport=ToOurServer(server_url)),
        app_secret=made.app_secret,
        waba_id=made.waba_id,
        api_version="23.0",
    )


class ToOurServer(httpx.BaseTransport):
    """Sends requests meant for graph.facebook.com to our server instead (pywa's base URL)."""

    def __init__(self, base: str) -> None:
        self._base = httpx.URL(base)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._base.scheme, host=self._base.host, port=self._base.port
        )
        request.headers["host"] = f"{self._base.host}:{self._base.port}"
        return self._inner.handle_request(request)


async def open_window(
    customer: DeviceClient,
    business: str,
    settings: Settings,
    clock: Clock,
    text: str = "Hi, a question about my order",
    timeout: float = 20.0,
) -> None:
    """The customer writes first, opening the 24-hour customer service window (free-form
    sends outside it fail with 131047), and this returns once the platform has applied the
    message (read from the database through a runtime on the test's own loop)."""
    runtime = build_runtime(settings, clock=clock)
    try:
        before = await inbound_count(runtime, customer.phone)
        await customer.send_text(business, text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await inbound_count(runtime, customer.phone) <= before:
            if loop.time() > deadline:
                raise AssertionError("the customer's message did not open a window in time")
            await asyncio.sleep(0.05)
    finally:
        await runtime.close()


async def inbound_count(runtime: Runtime, customer: str) -> int:
    """Messages from `customer` the business platform has applied."""
    async with runtime.database.read_only() as uow:
        count = await uow.session.scalar(
            select(func.count())
            .select_from(BusinessMessage)
            .where(BusinessMessage.direction == "in", BusinessMessage.customer == customer)
        )
    return int(count or 0)


__all__ = [
    "Receiver",
    "ToOurServer",
    "inbound_count",
    "open_window",
    "provision_shop",
    "pywa_client",
    "receiver",
    "run_in_thread",
    "serving",
    "start_receiver",
]
