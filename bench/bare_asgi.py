"""The baseline for benchmarks: the smallest FastAPI app that takes a JSON POST and answers.

.venv/bin/python bench/bare_asgi.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.get("/{path:path}")
async def handshake(request: Request) -> Response:
    return Response(request.query_params.get("hub.challenge", "ok"))


@app.post("/{path:path}")
async def accept(request: Request) -> dict[str, bool]:
    await request.body()
    return {"success": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
