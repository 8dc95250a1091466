"""create_app(runtime) -> the ASGI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidings import __version__
from tidings.devices.routes import router as devices_router
from tidings.errors import AppError, PayloadTooLarge
from tidings.gateway.routes import router as gateway_router
from tidings.mailbox.routes import router as mailbox_router
from tidings.protocol.codes import ErrorCode
from tidings.runtime import Runtime

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status_code=status
    )


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.close()

    app = FastAPI(title="Tidings", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.state.bus = runtime.bus
    app.state.accounts = runtime.accounts
    app.state.devices = runtime.devices
    app.state.links = runtime.links
    app.state.mailbox = runtime.mailbox

    app.include_router(devices_router)
    app.include_router(mailbox_router)
    app.include_router(gateway_router)

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    max_bytes = runtime.settings.server.max_request_bytes

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            error = PayloadTooLarge(f"request body over the {max_bytes}-byte limit")
            return error_response(error.status, str(error.code), error.message)
        return await call_next(request)

    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> JSONResponse:
        response = error_response(exc.status, str(exc.code), exc.message, exc.details)
        if retry_after := exc.details.get("retry_after"):
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
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
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.VALIDATION_FAILED}.get(
            exc.status_code, ErrorCode.INTERNAL
        )
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(
            500, ErrorCode.INTERNAL, "internal error; the server logged the details"
        )

    return app
