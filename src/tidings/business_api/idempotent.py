"""`Idempotency-Key` on `POST /{phone_number_id}/messages`: the HTTP side of
`tidings.business.idempotency` (beyond Meta; the Cloud API has no such header).

`idempotent(send_message)` wraps the route handler. Without the header it is the handler. With
it the caller is authenticated first (keys are per business and phone number), the key is
claimed, and the response is stored as it went out: status and exact bytes, trace id included,
so a retry is indistinguishable from the first answer but for the `Idempotent-Replayed: true`
header. Answers of the key itself, in the Graph envelope:

- 400, code 100: the header is not 1-255 printable ASCII characters;
- 409, code 2 (API Service, "temporary, retry"): the first request with this key is still
  running; `Retry-After: 1`;
- 422, code 100, details "...already used with a different request...": same key, other body.

A 5xx (or any unexpected failure) releases the key, so the client's retry really retries.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from tidings.business.idempotency import (
    Claim,
    IdempotencyKeys,
    KeyInProgress,
    KeyReused,
    KeyScope,
    Replay,
    check_key,
    request_fingerprint,
)
from tidings.business_api.auth import messaging_phone
from tidings.business_api.graph_errors import (
    GraphCode,
    GraphError,
    graph_envelope,
    map_any_app_error,
)
from tidings.errors import AppError

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IN_PROGRESS_RETRY_SECONDS = 1

SendHandler = Callable[[Request, str, str | None], Awaitable[Any]]


def idempotency_keys_of(request: Request) -> IdempotencyKeys:
    service: IdempotencyKeys = request.app.state.idempotency
    return service


def idempotent(send: SendHandler) -> Callable[..., Awaitable[Any]]:
    """`send` with Idempotency-Key support; FastAPI reads the wrapper's own signature."""

    async def send_once(request: Request, phone_number_id: str, version: str | None = None) -> Any:
        raw_key = request.headers.get(IDEMPOTENCY_HEADER)
        if raw_key is None:
            return await send(request, phone_number_id, version)
        phone = await messaging_phone(request, phone_number_id)
        scope = KeyScope(phone.business_id, phone.phone_number_id, check_key(raw_key))
        keys = idempotency_keys_of(request)
        try:
            outcome = await keys.reserve(scope, request_fingerprint(await request.body()))
        except KeyReused as exc:
            raise GraphError(GraphCode.INVALID_PARAMETER, exc.message, http_status=422) from None
        except KeyInProgress as exc:
            return _graph_error_response(
                GraphError(GraphCode.API_SERVICE, exc.message, http_status=409),
                headers={"Retry-After": str(IN_PROGRESS_RETRY_SECONDS)},
            )
        if isinstance(outcome, Replay):
            return Response(
                outcome.body,
                status_code=outcome.status,
                media_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
        return await _send_and_store(send, request, phone_number_id, version, keys, outcome)

    return send_once


async def _send_and_store(
    send: SendHandler,
    request: Request,
    phone_number_id: str,
    version: str | None,
    keys: IdempotencyKeys,
    claim: Claim,
) -> Response:
    try:
        response = _as_response(await send(request, phone_number_id, version))
    except AppError as exc:
        error = map_any_app_error(exc)
        if error.http_status >= 500:
            await _release(keys, claim)
            raise
        # A refused send is an answer too: the retry gets the same refusal, not a second try.
        response = _graph_error_response(error, headers=exc.retry_headers())
    except BaseException:
        await _release(keys, claim)
        raise
    if response.status_code >= 500:
        await _release(keys, claim)
        return response
    await keys.complete(claim, response.status_code, bytes(response.body).decode())
    return response


def _as_response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    return JSONResponse(jsonable_encoder(result))


def _graph_error_response(error: GraphError, headers: dict[str, str] | None = None) -> Response:
    # The app renders GraphErrors the same way (app.graph_response); here the bytes are needed
    # before the response leaves, to store them.
    return JSONResponse(
        graph_envelope(error, trace_id=secrets.token_urlsafe(15)),
        status_code=error.http_status,
        headers=headers,
    )


async def _release(keys: IdempotencyKeys, claim: Claim) -> None:
    try:
        await keys.release(claim)
    except Exception:  # the lease frees the key later; the original failure matters more
        log.exception("could not release idempotency key %s", claim.record_id)
