"""`/v1/ws`: a device's live connection.

Server frames: `{"type": "envelopes", "envelopes": [...], "one_time_key_count": n}` and
`{"type": "removed"}` (then close 4403, see dispatcher.py).
Client frames: `{"type": "ack", "seqs": [...]}`.
The bus only rings the bell; every push is read from the database after the cursor, so a lost
wake-up costs latency, never a message. Heartbeats are websocket pings (uvicorn's ws_ping_*).
Pushes come from the node's `Dispatcher` (dispatcher.py); this handler only reads the client's
frames, so an idle connection holds no task of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from tidings.devices.routes import bearer_token
from tidings.devices.service import DeviceContext, DeviceService
from tidings.errors import AppError
from tidings.gateway.dispatcher import Dispatcher
from tidings.mailbox.service import MailboxService
from tidings.protocol import api

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_FRAME = 4400
BAD_FRAME_REPLY = json.dumps(
    {"type": "error", "code": "validation_failed", "message": "expected {type: ack, seqs: [int]}"}
)


@router.websocket("/v1/ws")
async def device_socket(websocket: WebSocket, after: int = 0) -> None:
    devices: DeviceService = websocket.app.state.devices
    try:
        ctx = await devices.authenticate(bearer_token(websocket))  # type: ignore[arg-type]
    except AppError as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=exc.message[:120])
        return
    # Touch before accepting: a client counts as connected once it is accepted, and on SQLite a
    # burst of reconnects would otherwise leave a queue of these writes in front of the next
    # send (2000 sockets: 1.9 s from send to push instead of 0.15 s, docs/performance.md).
    await devices.touch(ctx)
    await websocket.accept()
    dispatcher = node_dispatcher(websocket)
    connection = await dispatcher.attach(ctx, websocket, max(after, 0))
    try:
        with contextlib.suppress(WebSocketDisconnect):
            await read_frames(websocket, websocket.app.state.mailbox, connection.group.ctx)
    finally:
        await dispatcher.detach(connection)


def node_dispatcher(websocket: WebSocket) -> Dispatcher:
    """The app's one dispatcher, made on the first connection (it holds no resources while no
    device is connected)."""
    state = websocket.app.state
    dispatcher: Dispatcher | None = getattr(state, "gateway_dispatcher", None)
    if dispatcher is None:
        dispatcher = state.gateway_dispatcher = Dispatcher(state.bus, state.mailbox)
    return dispatcher


async def read_frames(websocket: WebSocket, mailbox: MailboxService, ctx: DeviceContext) -> None:
    while True:
        text = await websocket.receive_text()
        try:
            frame: Any = json.loads(text)
            if not isinstance(frame, dict) or frame.get("type") != "ack":
                raise ValueError("unknown frame")
            ack = api.AckRequest.model_validate({"seqs": frame.get("seqs")})
        except (ValueError, ValidationError):
            await websocket.send_text(BAD_FRAME_REPLY)
            continue
        deleted = await mailbox.ack(ctx, ack.seqs)
        await websocket.send_json({"type": "acked", "deleted": deleted, "seqs": ack.seqs})
