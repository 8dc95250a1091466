"""`POST /vNN.N/{digits}/messages` served as plain ASGI, in front of FastAPI.

Every send (and every refusal while a number's backlog is full) is this request. Through
FastAPI it passed the middleware stack, the router, the route's exception wrapper and the
dependency machinery: about 100 µs of a bare FastAPI route on this machine, and a third of the
server's CPU for a send that is refused. Here the same handler (`send_message_once`, with its
Idempotency-Key support) runs on a Starlette `Request` of its own; what it returns is
rendered as FastAPI renders it, and what it raises goes to the app's own exception handlers,
so answers are byte for byte those of the routed path (which still serves every other form of
the path, unversioned or with a non-numeric id, and documents it in the OpenAPI schema). The
app wraps it in its `BodyLimit`, as every other route is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.business_api.routes import send_message_once

SEND_PATH = re.compile(r"/(v\d+\.\d+)/(\d+)/messages")

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def send_params(scope: Scope) -> dict[str, str] | None:
    """The path parameters of a Cloud API send (`version`, `phone_number_id`), or None when
    `scope` is another request. The app puts them in `scope["path_params"]`, as a router
    would, so the path is matched once per request."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    matched = SEND_PATH.fullmatch(scope["path"])
    if matched is None:
        return None
    return {"version": matched[1], "phone_number_id": matched[2]}


class SendPath:
    """The send endpoint for `app`, whose state it uses; `handle_error` answers what the
    handler raises as the app's exception handlers would."""

    def __init__(self, app: ASGIApp, handle_error: ErrorHandler) -> None:
        self.app = app
        self.handle_error = handle_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope.get("path_params") or send_params(scope)
        assert params is not None  # the app sends only what `send_params` accepts
        version, phone_number_id = params["version"], params["phone_number_id"]
        scope["app"] = self.app  # as Starlette sets it: handlers read `request.app.state`
        request = Request(scope, receive)
        response: Response
        try:
            result: Any = await send_message_once(request, phone_number_id, version)
            response = result if isinstance(result, Response) else JSONResponse(result)
        except Exception as exc:
            response = await self.handle_error(request, exc)
        await response(scope, receive, send)
