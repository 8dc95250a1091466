"""`/v1/ws`: a device's live connection.

Query: `after` (optional integer): the client's cursor; the backlog after it comes first.
Server frames: `{"type": "envelopes", "envelopes": [...], "one_time_key_count": n}`,
`{"type": "acked", "deleted": n, "seqs": [...]}`, `{"type": "error", ...}` for a frame it could
not read, and `{"type": "removed"}` (then close 4403, see dispatcher.py).
Client frames: `{"type": "ack", "seqs": [...], "receipts": [...], "ref": "..."}`, where
`receipts` (optional, up to 100, each a `POST /v1/receipts` body) are filed in the same unit of
work as the deletion, and `ref` (optional) comes back in the `acked` reply; with receipts the
reply also carries `"receipts": [{"filed": n} or {"error": {...}}]`, one per receipt in order,
and `seqs` may be empty. A device sends the receipts its envelopes queued with their ack, which
saves a request and a unit of work per frame; it keeps them queued until the reply comes.
Refusals, before the handshake completes (the client sees HTTP 403 or the close code): 4401 for
missing, invalid or revoked credentials, 4400 for an `after` that is not an integer.
The bus only rings the bell; every push is read from the database after the cursor, so a lost
wake-up costs latency, never a message. Heartbeats are websocket pings (uvicorn's ws_ping_*).
Pushes come from the node's `Dispatcher` (dispatcher.py); this handler only reads the client's
frames, so an idle connection holds no task of its own.

Plain ASGI on purpose, served in front of FastAPI (app.py): a device connection stays open for
hours, and every layer it passed through (Starlette's middlewares, the router, FastAPI's
dependency solving and exit stacks, the `WebSocket` object) kept its frame and state alive for
as long as the connection lived: about 12 KB of the 35 KB each idle connection cost.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from tidings.devices.service import DeviceService
from tidings.errors import AppError
from tidings.gateway.dispatcher import Connection, Dispatcher
from tidings.mailbox.service import MailboxService
from tidings.protocol import api

PATH = "/v1/ws"
CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_REQUEST = 4400
BAD_FRAME_REPLY = json.dumps(
    {
        "type": "error",
        "code": "validation_failed",
        "message": "expected {type: ack, seqs: [int], receipts?: [receipt], ref?: string}",
    }
)


_ACK_FIELDS = tuple(api.AckFrame.model_fields)

# What the ASGI server raises for a send on a connection it has closed: uvicorn raises
# RuntimeError ("Unexpected ASGI message 'websocket.send', after sending 'websocket.close'"),
# servers following the ASGI spec's later versions an OSError.
_CLOSED_UNDER_US = (RuntimeError, OSError)


class Gateway:
    """The `/v1/ws` endpoint: authenticates, touches, accepts, hands the connection to the
    node's dispatcher, then answers the client's frames until it goes."""

    def __init__(self, devices: DeviceService, mailbox: MailboxService, dispatcher: Dispatcher):
        self._devices = devices
        self._mailbox = mailbox
        self.dispatcher = dispatcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return  # gone before the handshake
        connection = await self._open(scope, send)
        if connection is None:
            return
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                reply = await self._answer(connection, message.get("text"))
                try:
                    await connection.send({"type": "websocket.send", "text": reply})
                except _CLOSED_UNDER_US:
                    # The server closed the socket while the frame was handled (a keepalive
                    # ping that timed out on a device too busy to read): what it acknowledged
                    # is deleted, and nobody is left to tell.
                    return
        finally:
            await self.dispatcher.detach(connection)

    async def _open(self, scope: Scope, send: Send) -> Connection | None:
        """The accepted connection, or None after refusing it. Its own function so that the
        context it authenticated dies here: the device's group keeps the first one."""
        after = cursor(scope["query_string"])
        if after is None:
            await send(close(CLOSE_BAD_REQUEST, "`after` must be an integer"))
            return None
        token = bearer(scope["headers"])
        # The server keeps the scope as long as the connection: drop what is no longer needed.
        scope["headers"] = []
        try:
            ctx = await self._devices.authenticate(token)
        except AppError as exc:
            await send(close(CLOSE_UNAUTHORIZED, exc.message[:120]))
            return None
        # Touch before accepting: a client counts as connected once it is accepted, and on
        # SQLite a burst of reconnects would otherwise leave a queue of these writes in front of
        # the next send (2000 sockets: 1.9 s from send to push instead of 0.15 s).
        await self._devices.touch(ctx)
        await send({"type": "websocket.accept"})
        return await self.dispatcher.attach(ctx, send, max(after, 0))

    async def _answer(self, connection: Connection, text: str | None) -> str:
        """Apply a client's frame; the reply to send it."""
        try:
            frame: Any = json.loads(text) if text is not None else None
            if not isinstance(frame, dict) or frame.get("type") != "ack":
                raise ValueError("unknown frame")
            # Fields it does not know are ignored, as they always were on this socket.
            ack = api.AckFrame.model_validate({k: frame[k] for k in _ACK_FIELDS if k in frame})
        except (ValueError, ValidationError):
            return BAD_FRAME_REPLY
        ctx = connection.group.ctx
        reply: dict[str, Any] = {"type": "acked"}
        if ack.receipts:
            done = await self._mailbox.ack_and_file(ctx, ack.seqs, ack.receipts)
            reply["deleted"] = done.deleted
            reply["receipts"] = [
                outcome.to_body() if isinstance(outcome, AppError) else {"filed": outcome}
                for outcome in done.filed
            ]
        else:
            reply["deleted"] = await self._mailbox.ack(ctx, ack.seqs)
        reply["seqs"] = ack.seqs
        if ack.ref is not None:
            reply["ref"] = ack.ref
        return json.dumps(reply, separators=(",", ":"))


def close(code: int, reason: str) -> dict[str, Any]:
    return {"type": "websocket.close", "code": code, "reason": reason}


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as devices/routes.py reads it."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def cursor(query_string: bytes) -> int | None:
    """The `after` query parameter (0 when absent), or None when it is not an integer."""
    for pair in query_string.decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if name == "after":
            try:
                return int(value)
            except ValueError:
                return None
    return 0
