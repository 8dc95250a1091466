"""The webhook receiver the harness runs (the business's CRM: the outer edge). A bare ASGI app
on uvicorn that answers Meta's GET handshake, counts status and message webhooks, and reports
the counts at `GET /stats`.

    python -m bench.receiver PORT VERIFY_TOKEN
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Scope = dict[str, Any]


class Counts:
    def __init__(self) -> None:
        self.posts = 0
        self.messages = 0
        self.statuses: dict[str, int] = {}
        self.errors: dict[str, int] = {}  # failed statuses by Graph code and title
        self.first_message_at: float | None = None
        self.last_message_at: float | None = None

    def record(self, body: bytes) -> None:
        self.posts += 1
        document = json.loads(body)
        for entry in document.get("entry", ()):
            for change in entry.get("changes", ()):
                value = change.get("value", {})
                for status in value.get("statuses", ()):
                    kind = status.get("status", "?")
                    self.statuses[kind] = self.statuses.get(kind, 0) + 1
                    for error in status.get("errors", ()):
                        key = f"{error.get('code')} {error.get('title', '')}"
                        self.errors[key] = self.errors.get(key, 0) + 1
                if value.get("messages"):
                    now = time.time()
                    self.messages += len(value["messages"])
                    self.first_message_at = self.first_message_at or now
                    self.last_message_at = now

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "posts": self.posts,
                "messages": self.messages,
                "statuses": self.statuses,
                "errors": self.errors,
                "first_message_at": self.first_message_at,
                "last_message_at": self.last_message_at,
                "now": time.time(),
            }
        ).encode()


def build_app(verify_token: str) -> Any:
    counts = Counts()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["method"] == "POST":
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            counts.record(b"".join(chunks))
            await answer(send, 200, b"")
        elif scope["path"] == "/stats":
            await answer(send, 200, counts.as_json())
        elif scope["path"] == "/healthz":
            await answer(send, 200, b"ok")
        else:
            query = parse_qs(scope.get("query_string", b"").decode())
            if query.get("hub.verify_token") == [verify_token]:
                await answer(send, 200, query.get("hub.challenge", [""])[0].encode())
            else:
                await answer(send, 403, b"forbidden")

    return app


async def answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        build_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning"
    )
