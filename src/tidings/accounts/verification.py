"""Verification providers: how a registration code reaches the owner of a phone number.

`OperatorProvider` sends nothing: the operator hands out codes made by `tidings admin invite`.
`HttpSmsProvider` posts the code to the SMS gateway the operator configured.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from tidings.errors import AppError
from tidings.protocol.codes import ErrorCode

log = logging.getLogger(__name__)


class VerificationProvider(Protocol):
    name: str

    async def send_code(self, phone: str, code: str) -> None: ...


class OperatorProvider:
    name = "operator"

    async def send_code(self, phone: str, code: str) -> None:
        raise AppError(
            "this server registers numbers by operator invitation only: ask the operator for a"
            " code (`tidings admin invite PHONE`)",
            code=ErrorCode.VERIFICATION_UNAVAILABLE,
            status=403,
        )


class HttpSmsProvider:
    """POSTs `{"to": phone, "code": code, "message": text}` as JSON to the gateway URL."""

    name = "http"

    def __init__(
        self, url: str, token: str | None, transport: httpx.AsyncBaseTransport | None = None
    ):
        self._url = url
        self._token = token
        self._transport = transport

    async def send_code(self, phone: str, code: str) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        body = {"to": phone, "code": code, "message": f"Your Tidings code is {code}"}
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=10) as client:
                response = await client.post(self._url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("SMS gateway unreachable: %s", type(exc).__name__)
            raise AppError(
                "the SMS gateway could not be reached; try again later",
                code=ErrorCode.VERIFICATION_FAILED,
                status=503,
            ) from exc
        if response.status_code >= 300:
            log.warning("SMS gateway answered %s", response.status_code)
            raise AppError(
                f"the SMS gateway refused the message (HTTP {response.status_code})",
                code=ErrorCode.VERIFICATION_FAILED,
                status=502,
            )
