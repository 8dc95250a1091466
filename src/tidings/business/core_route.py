"""The API devices' route to the network core inside one process: the core's services,
called directly for the calls a delivery pass makes (send a batch, read and acknowledge the
mailbox, post receipts), instead of an HTTP request through the whole app for each.

The device is still authenticated by its token on every call, and a failure is the same
`SdkError` (code, message, status, details) the HTTP route would have answered, so the SDK
cannot tell the difference. Everything else the API devices do goes over HTTP in-process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tidings.devices.service import DeviceContext, DeviceService
from tidings.errors import AppError
from tidings.mailbox.service import MailboxService
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode
from tidings.sdk.errors import SdkError

log = logging.getLogger(__name__)


def as_sdk_error(exc: AppError) -> SdkError:
    """What the SDK makes of the error envelope the HTTP route would have sent."""
    details = json.loads(json.dumps(exc.details, default=str))
    return SdkError(str(exc.code), exc.message, exc.status, details)


class InProcessCore:
    def __init__(self, devices: DeviceService, mailbox: MailboxService) -> None:
        self._devices = devices
        self._mailbox = mailbox

    @asynccontextmanager
    async def _as_device(self, token: str) -> AsyncIterator[DeviceContext]:
        """The device `token` authenticates, as the HTTP routes check it; failures inside
        are answered as those routes answer them: an AppError with its own status, anything
        else as a logged 500 (which the SDK treats as worth retrying)."""
        try:
            yield await self._devices.authenticate(token)
        except AppError as exc:
            raise as_sdk_error(exc) from exc
        except Exception as exc:
            log.exception("in-process core call failed")
            raise SdkError(
                str(ErrorCode.INTERNAL), "internal error; the server logged the details", 500
            ) from exc

    async def send_batch(
        self, token: str, requests: list[api.SendRequest]
    ) -> list[api.SendResponse | SdkError]:
        async with self._as_device(token) as device:
            results = await self._mailbox.send_batch(device, requests)
        return [
            result if isinstance(result, api.SendResponse) else as_sdk_error(result)
            for result in results
        ]

    async def mailbox(self, token: str, after: int, limit: int) -> api.MailboxPage:
        async with self._as_device(token) as device:
            if after == 0:  # a sync starting, which the HTTP route records too
                await self._devices.touch(device)
            return await self._mailbox.fetch(device, after, limit)

    async def ack(self, token: str, seqs: list[int]) -> int:
        async with self._as_device(token) as device:
            return await self._mailbox.ack(device, seqs)

    async def receipt(self, token: str, request: api.ReceiptRequest) -> int:
        async with self._as_device(token) as device:
            return await self._mailbox.receipt(device, request)
