"""The baseline every scenario measures in the same run: the smallest app on our server stack
(FastAPI on uvicorn with uvloop, httptools and websockets' sans-I/O protocol, SQLAlchemy's async
engine with the same SQLite pragmas or PostgreSQL pool) that accepts the same JSON, writes one
row in one transaction and answers. Its websocket `/ws` holds idle connections and pushes every
accepted body to them after the commit, the least a send-to-device path must do.

    python -m bench.bare_asgi PORT DATABASE_URL
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from sqlalchemy import text

from tidings.db.engine import make_engine
from tidings.db.uow import Database


def build_app(database_url: str) -> FastAPI:
    # One commit, with its own fsync, per request: the baseline does not group commits.
    database = Database(make_engine(database_url), shared_flush=False)
    sockets: set[WebSocket] = set()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        id_type = "INTEGER PRIMARY KEY" if database.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
        async with database.unit_of_work() as uow:
            await uow.session.execute(
                text(f"CREATE TABLE IF NOT EXISTS bench_rows (id {id_type}, body TEXT NOT NULL)")
            )
        yield
        await database.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/{path:path}")
    async def accept(request: Request) -> dict[str, object]:
        body = await request.json()
        raw = await request.body()
        async with database.unit_of_work() as uow:
            await uow.session.execute(
                text("INSERT INTO bench_rows (body) VALUES (:body)"), {"body": raw.decode()}
            )
            if sockets:
                uow.after_commit(lambda: push(raw.decode()))
        return {"messages": [{"id": f"wamid.{uuid.uuid4().hex}"}], "to": body.get("to")}

    async def push(frame: str) -> None:
        await asyncio.gather(*(s.send_text(frame) for s in list(sockets)), return_exceptions=True)

    @app.get("/{path:path}")
    async def handshake(request: Request) -> Response:
        return Response(request.query_params.get("hub.challenge", "ok"))

    @app.websocket("/ws")
    async def idle(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await websocket.receive_text()
        finally:
            sockets.discard(websocket)

    return app


if __name__ == "__main__":
    uvicorn.run(
        build_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        ws_per_message_deflate=False,  # as `tidings serve` runs
        ws="websockets-sansio",  # the implementation `tidings serve` uses by default
    )
