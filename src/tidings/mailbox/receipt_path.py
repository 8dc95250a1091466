"""`POST /v1/receipts` served as plain ASGI, in front of FastAPI.

A customer's device posts a receipt for every message it is delivered and for every one it
reads, so with a companion a message brings four of these requests; in the sustained
scenario they were the largest single part of the server's busy time. Through FastAPI each
paid the middleware stack, the router, the dependency machinery and the response model's
validation, a large share of a request whose own work is two reads and an insert.

Here a request whose body FastAPI would parse as JSON and validate without complaint runs the
route's own function (`routes.receipts`, with the device authenticated as its dependency
does); what it raises goes to the app's exception handlers, and what it returns is rendered as
FastAPI renders a dict. Any other request (another content type, a body that is not JSON or
does not validate) is handed, body and all, to FastAPI, which answers it as it always did: the
order in which FastAPI reports problems (the JSON, then the credentials, then the fields) is
its own. The app wraps this path in its `BodyLimit`, as every route is.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.devices.routes import current_device
from tidings.mailbox.routes import receipts
from tidings.protocol import api

RECEIPT_PATH = "/v1/receipts"

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def is_receipt(scope: Scope) -> bool:
    return bool(
        scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == RECEIPT_PATH
    )


class ReceiptPath:
    """The receipts endpoint for `app`, whose state it uses; `routed` is the app's FastAPI
    handling, for the requests this path leaves to it; `handle_error` answers what the route
    raises as the app's exception handlers would."""

    def __init__(self, app: ASGIApp, routed: ASGIApp, handle_error: ErrorHandler) -> None:
        self.app = app
        self.routed = routed
        self.handle_error = handle_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app  # as Starlette sets it: handlers read `request.app.state`
        request = Request(scope, receive)
        body = await request.body()
        receipt = _valid_receipt(request.headers.get("content-type"), body)
        if receipt is None:
            await self.routed(scope, _replay(body, receive), send)
            return
        response: Response
        try:
            device = await current_device(request)
            response = JSONResponse(await receipts(receipt, device, request))
        except Exception as exc:
            response = await self.handle_error(request, exc)
        await response(scope, receive, send)


def _valid_receipt(content_type: str | None, body: bytes) -> api.ReceiptRequest | None:
    """The request's receipt, when FastAPI would read the body as JSON and find it valid."""
    if content_type is None or content_type.split(";")[0].strip().lower() != "application/json":
        return None
    try:
        return api.ReceiptRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for a request whose body was already read: the body, then what follows."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
