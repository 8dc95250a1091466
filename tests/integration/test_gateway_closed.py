"""The gateway when the ASGI server closes a device's socket under it (a keepalive ping that
timed out): the frame being answered ends the connection's handler quietly, without the
"Exception in ASGI application" a send on the closed socket used to raise."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from core_helpers import envelope, registered

from tidings.app import create_app

ALICE, BOB = "+15550100001", "+15550100002"


class ClosedAfterAccept:
    """The ASGI server's side of one websocket, as uvicorn behaves once its keepalive closed
    the socket after the accept: frames already read still reach the app, and a send raises."""

    def __init__(self, frames: list[str]) -> None:
        self.incoming: list[dict[str, Any]] = [{"type": "websocket.connect"}]
        self.incoming += [{"type": "websocket.receive", "text": f} for f in frames]
        self.sent: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.more = asyncio.Event()  # never set: a socket with nothing further to read

    async def receive(self) -> dict[str, Any]:
        if self.incoming:
            return self.incoming.pop(0)
        await self.more.wait()
        return {"type": "websocket.disconnect", "code": 1011}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.sent.append(message)
            return
        self.refused.append(message)
        raise RuntimeError(
            f"Unexpected ASGI message '{message['type']}', after sending 'websocket.close'."
        )


async def test_an_ack_answered_on_a_socket_the_server_closed_ends_the_handler(
    server, invite, local
) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = await registered(client, invite, ALICE, BOB)
        body = {"message_id": "one", "to": BOB, "envelopes": [envelope(BOB, bob.device_id)]}
        sent = await asyncio.to_thread(
            client.post, "/v1/messages", json=body, headers=alice.headers
        )
        assert sent.status_code == 200, sent.text
        page = (await asyncio.to_thread(client.get, "/v1/mailbox", headers=bob.headers)).json()
    seqs = [e["seq"] for e in page["envelopes"] if e["message_id"] == "one"]

    app = create_app(local)
    socket = ClosedAfterAccept([f'{{"type": "ack", "seqs": {seqs}}}'])
    scope = {
        "type": "websocket",
        "path": "/v1/ws",
        "query_string": b"after=0",
        "headers": [(b"authorization", f"Bearer {bob.token}".encode())],
    }
    # Returns, detaching the connection, once the reply is refused: no exception reaches
    # the ASGI server. (The backlog's push, refused too, is the dispatcher's to drop.)
    await asyncio.wait_for(app.gateway(scope, socket.receive, socket.send), 15)

    assert [m["type"] for m in socket.sent] == ["websocket.accept"]
    assert any('"acked"' in m["text"] for m in socket.refused)
    # The ack itself was applied: the envelope is gone from the mailbox.
    with httpx.Client(base_url=server.url) as client:
        after = (await asyncio.to_thread(client.get, "/v1/mailbox", headers=bob.headers)).json()
    assert [e for e in after["envelopes"] if e["message_id"] == "one"] == []
