"""create_app(runtime) -> the ASGI application."""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings import __version__
from tidings.admin.routes import router as admin_router
from tidings.attachments.routes import router as attachments_router
from tidings.business_api.graph_errors import GraphError, graph_envelope, map_any_app_error
from tidings.business_api.media_routes import MAX_UPLOAD_BODY, is_media_upload
from tidings.business_api.media_routes import router as media_router
from tidings.business_api.openapi import router as business_openapi_router
from tidings.business_api.profiles import router as business_profiles_router
from tidings.business_api.routes import router as business_router
from tidings.business_api.send_path import SendPath, send_params
from tidings.devices.routes import router as devices_router
from tidings.errors import AppError, PayloadTooLarge
from tidings.gateway.dispatcher import Dispatcher
from tidings.gateway.routes import PATH as GATEWAY_PATH
from tidings.gateway.routes import Gateway
from tidings.mailbox.receipt_path import ReceiptPath, is_receipt
from tidings.mailbox.routes import router as mailbox_router
from tidings.protocol.codes import ErrorCode
from tidings.runtime import Runtime
from tidings.signals.routes import router as signals_router
from tidings.templates.preflight import TemplateLookup
from tidings.templates.routes import (
    edit_template_node,
    get_template_node,
    template_exists,
)
from tidings.templates.routes import router as templates_router
from tidings.templates.sending import prepare_template_send
from tidings.webhooks.routes import router as webhooks_router
from tidings.webhooks.service import relay_doorbell

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status_code=status
    )


def is_graph(request: Request) -> bool:
    """The Cloud API surface: everything but the network core's /v1, the operator's /admin and
    the health routes."""
    return is_graph_path(request.url.path)


def is_graph_path(path: str) -> bool:
    return not (
        path == "/healthz" or path.startswith(("/v1/", "/admin/")) or path in ("/v1", "/admin")
    )


class BodyLimit:
    """Refuses a request whose declared body is over its route's limit, before reading it.

    Plain ASGI on purpose: `@app.middleware("http")` (BaseHTTPMiddleware) runs every request,
    including the API devices' in-process calls, through an extra task and memory streams,
    which cost more than some handlers."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            if length is not None:
                path: str = scope["path"]
                max_bytes = self.limit_for(scope["method"], path)
                if not length.isdigit() or int(length) > max_bytes:
                    await too_large(path, max_bytes)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def too_large(path: str, max_bytes: int) -> JSONResponse:
    error = PayloadTooLarge(f"request body over the {max_bytes}-byte limit")
    if is_graph_path(path):
        code = 131053 if is_media_upload(path) else 100
        return graph_response(GraphError(code, error.message, http_status=413))
    return error_response(error.status, str(error.code), error.message)


def graph_response(error: GraphError) -> JSONResponse:
    return JSONResponse(
        graph_envelope(error, trace_id=secrets.token_urlsafe(15)), status_code=error.http_status
    )


def graph_error_from_request(exc: RequestValidationError) -> GraphError:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return GraphError(100, f"Invalid parameter {where}: {first.get('msg', 'invalid')}".strip())


class TidingsApp(FastAPI):
    """FastAPI with two plain ASGI handlers in front, past every middleware and the router:
    the device gateway's `/v1/ws` connections (gateway/routes.py says why) and the Cloud API's
    send, `POST /vNN.N/{digits}/messages` (business_api/send_path.py)."""

    gateway: Gateway
    send_path: ASGIApp  # a `SendPath` behind the app's `BodyLimit`
    receipt_path: ASGIApp  # a `ReceiptPath` behind the app's `BodyLimit`
    # False: every request goes through FastAPI (tests compare the two ways of answering).
    fast_paths = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["type"] == "websocket" and scope["path"] == GATEWAY_PATH:
                await self.gateway(scope, receive, send)
            elif not self.fast_paths:
                await super().__call__(scope, receive, send)
            elif (params := send_params(scope)) is not None:
                scope["path_params"] = params
                await self.send_path(scope, receive, send)
            elif is_receipt(scope):
                await self.receipt_path(scope, receive, send)
            else:
                await super().__call__(scope, receive, send)
        except ClientDisconnect:
            # The client left before its request's body arrived (a device's request timing
            # out under load): nothing was done and nobody is left to answer. Raised on, the
            # server logs it as a crash, with a traceback, once per such request.
            log.debug("client disconnected before its request body arrived: %s", scope["path"])

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request through FastAPI, whatever its path."""
        await super().__call__(scope, receive, send)


def create_app(runtime: Runtime) -> TidingsApp:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.webhooks.start()
        stop = asyncio.Event()
        worker = asyncio.create_task(runtime.business_worker.run(stop), name="business-worker")
        relay = asyncio.create_task(
            relay_doorbell(runtime.bus, runtime.webhooks.dispatcher, stop), name="webhook-relay"
        )
        try:
            yield
        finally:
            stop.set()
            # The relay only rings a doorbell: cancelling it loses nothing, and waiting for its
            # poll to notice `stop` would hold every shutdown for up to a second.
            relay.cancel()
            await worker
            await asyncio.gather(relay, return_exceptions=True)
            await runtime.close()

    app = TidingsApp(title="Tidings", version=__version__, lifespan=lifespan)
    app.gateway = Gateway(
        runtime.devices, runtime.mailbox, Dispatcher(runtime.bus, runtime.mailbox)
    )
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.state.bus = runtime.bus
    app.state.accounts = runtime.accounts
    app.state.devices = runtime.devices
    app.state.links = runtime.links
    app.state.mailbox = runtime.mailbox
    app.state.businesses = runtime.businesses
    app.state.webhooks = runtime.webhooks
    app.state.business_messaging = runtime.business_messaging
    app.state.attachments = runtime.attachments
    app.state.business_media = runtime.business_media
    app.state.idempotency = runtime.idempotency
    app.state.templates = runtime.templates
    app.state.template_desk = runtime.template_desk
    app.state.messaging_limits = runtime.messaging_limits
    app.state.billing = runtime.billing
    app.state.operator_tokens = runtime.operator_tokens
    app.state.template_sending = prepare_template_send
    app.state.signals = runtime.signals
    app.state.phone_quality = runtime.phone_quality
    app.state.template_lookup = TemplateLookup(runtime.template_desk)
    app.state.template_nodes = SimpleNamespace(
        exists=template_exists, get=get_template_node, edit=edit_template_node
    )
    # API devices reach the core through this very app, in-process (no socket).
    runtime.api_devices.set_transport(lambda: httpx.ASGITransport(app=app))

    app.include_router(devices_router)
    app.include_router(mailbox_router)
    app.include_router(attachments_router)
    app.include_router(business_profiles_router)  # /v1/business-profiles/{phone}

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(business_openapi_router)  # /business-api/openapi.json
    app.include_router(admin_router)  # /admin/v1/...: fixed paths, before the Graph catch-alls

    # Graph routes match any /{version}/{id}/...: they come after every fixed route. Media
    # first: `/{phone}/media` and the download URL would otherwise match `/{version}/{id}`.
    # Templates before media: `/{waba}/message_templates` has the shape of `/{version}/{id}`.
    app.include_router(templates_router)
    app.include_router(media_router)
    app.include_router(webhooks_router)
    # Consents and preflight before `/{version}/{node_id}`, which `/{phone}/consents` fits.
    app.include_router(signals_router)
    app.include_router(business_router)

    default_max_bytes = runtime.settings.server.max_request_bytes
    attachment_max_bytes = runtime.attachments.max_bytes

    def body_limit(method: str, path: str) -> int:
        """Files are bigger than anything else; their routes also count chunked bodies."""
        if method == "POST" and path == "/v1/attachments":
            return attachment_max_bytes
        if method == "POST" and is_media_upload(path):
            return max(default_max_bytes, MAX_UPLOAD_BODY)
        return default_max_bytes

    app.add_middleware(BodyLimit, limit_for=body_limit)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        if is_graph(request):
            response = graph_response(map_any_app_error(exc))
        else:
            response = error_response(exc.status, str(exc.code), exc.message, exc.details)
        # A refusal that knows when to come back (throughput 130429, pair rate 131056, ...)
        # says so in the header every HTTP client library honours, on both surfaces.
        response.headers.update(exc.retry_headers())
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        if is_graph(request):
            return graph_response(graph_error_from_request(exc))
        problems = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "problem": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems[:5])
        return error_response(
            400, ErrorCode.VALIDATION_FAILED, f"invalid request: {summary}", {"errors": problems}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if is_graph(request):
            return graph_response(
                GraphError(
                    100, f"Unknown path components: {request.url.path}", http_status=exc.status_code
                )
            )
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.VALIDATION_FAILED}.get(
            exc.status_code, ErrorCode.INTERNAL
        )
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        if is_graph(request):
            return graph_response(
                GraphError(131000, "Something went wrong; the server logged the details")
            )
        return error_response(
            500, ErrorCode.INTERNAL, "internal error; the server logged the details"
        )

    async def handle_error(request: Request, exc: Exception) -> Response:
        """The handler registered above that the router would pick for `exc`: the nearest
        class in its MRO (`Exception` catches the rest)."""
        handlers = app.exception_handlers
        handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
        answered = handler(request, exc)
        return await answered if inspect.isawaitable(answered) else answered

    app.send_path = BodyLimit(SendPath(app, handle_error), limit_for=body_limit)
    app.receipt_path = BodyLimit(ReceiptPath(app, app.routed, handle_error), limit_for=body_limit)
    return app
