"""`/v1/ws`: a device's live connection.

Server frames: `{"type": "envelopes", "envelopes": [...], "one_time_key_count": n}` and
`{"type": "removed"}` (then close 4403). Client frames: `{"type": "ack", "seqs": [...]}`.
The bus only rings the bell; every push is read from the database after the cursor, so a lost
wake-up costs latency, never a message. Heartbeats are websocket pings (uvicorn's ws_ping_*).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from tidings.bus.base import Bus
from tidings.devices.routes import bearer_token
from tidings.devices.service import DeviceContext, DeviceService
from tidings.errors import AppError
from tidings.mailbox.service import MailboxService, device_topic, mailbox_topic
from tidings.protocol import api

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_REMOVED = 4403
CLOSE_BAD_FRAME = 4400


@router.websocket("/v1/ws")
async def device_socket(websocket: WebSocket, after: int = 0) -> None:
    devices: DeviceService = websocket.app.state.devices
    try:
        ctx = await devices.authenticate(bearer_token(websocket))  # type: ignore[arg-type]
    except AppError as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=exc.message[:120])
        return
    await websocket.accept()
    await devices.touch(ctx)
    session = _Session(websocket, ctx, websocket.app.state.mailbox, websocket.app.state.bus)
    with contextlib.suppress(WebSocketDisconnect):
        await session.run(max(after, 0))


class _Session:
    def __init__(self, websocket: WebSocket, ctx: DeviceContext, mailbox: MailboxService, bus: Bus):
        self.websocket = websocket
        self.ctx = ctx
        self.mailbox = mailbox
        self.bus = bus

    async def run(self, cursor: int) -> None:
        topics = (mailbox_topic(self.ctx.device_pk), device_topic(self.ctx.device_pk))
        async with self.bus.subscribe(*topics) as subscription:
            reader = asyncio.create_task(self._read_frames())
            try:
                while True:
                    cursor = await self._push_after(cursor)
                    bell = asyncio.create_task(subscription.get())
                    done, _ = await asyncio.wait(
                        {bell, reader}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if reader in done:
                        bell.cancel()
                        reader.result()  # re-raise a disconnect
                        return
                    message = bell.result()
                    if message and message.get("event") == "removed":
                        await self.websocket.send_json({"type": "removed"})
                        await self.websocket.close(code=CLOSE_REMOVED, reason="device removed")
                        return
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                    await reader

    async def _push_after(self, cursor: int) -> int:
        while True:
            page = await self.mailbox.fetch(self.ctx, cursor)
            if page.envelopes:
                cursor = page.envelopes[-1].seq
                await self.websocket.send_json(
                    {
                        "type": "envelopes",
                        "envelopes": [e.model_dump() for e in page.envelopes],
                        "one_time_key_count": page.one_time_key_count,
                    }
                )
            if not page.more:
                return cursor

    async def _read_frames(self) -> None:
        while True:
            text = await self.websocket.receive_text()
            try:
                frame: Any = json.loads(text)
                if not isinstance(frame, dict) or frame.get("type") != "ack":
                    raise ValueError("unknown frame")
                ack = api.AckRequest.model_validate({"seqs": frame.get("seqs")})
            except (ValueError, ValidationError):
                await self.websocket.send_json(
                    {
                        "type": "error",
                        "code": "validation_failed",
                        "message": "expected {type: ack, seqs: [int]}",
                    }
                )
                continue
            deleted = await self.mailbox.ack(self.ctx, ack.seqs)
            await self.websocket.send_json({"type": "acked", "deleted": deleted, "seqs": ack.seqs})
