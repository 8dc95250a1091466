"""Receipts a device sends (delivered, read): queued in the sealed outbox in the transaction
that produced them, posted after, and kept there when posting fails for a passing reason."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tidings.protocol import api
from tidings.sdk.errors import SdkError, is_passing
from tidings.sdk.store import RECEIPT_OUTBOX

if TYPE_CHECKING:
    from tidings.sdk.client import DeviceClient
    from tidings.sdk.receive import Receiver

log = logging.getLogger(__name__)


async def post_receipt_outbox(client: DeviceClient) -> bool:
    """Post the outbox's receipts, one request per sender and type (100 ids each); keep what
    fails for a passing reason. True when something was kept."""
    deferred = False
    with client.store.transaction() as state:
        pending: list[dict[str, Any]] = state.get_json(RECEIPT_OUTBOX) or []
    if not pending:
        return False
    grouped: dict[tuple[str, str], list[str]] = {}
    for item in pending:
        grouped.setdefault((item["to"], item["type"]), []).extend(item["ids"])
    sent: set[tuple[str, str]] = set()  # (to, type) groups that went out
    for (to, kind), ids in grouped.items():
        try:
            for start in range(0, len(ids), 100):
                request = api.ReceiptRequest(
                    to=to,
                    type="read" if kind == "read" else "delivered",
                    message_ids=ids[start : start + 100],
                )
                await client.api.receipt(request)
        except SdkError as exc:
            if is_passing(exc):
                deferred = True
                continue
            log.warning("receipt to %s dropped: %s", to, exc)
        sent.add((to, kind))
    with client.store.transaction() as state:
        # Only drop what was read above: items queued meanwhile must survive.
        flushed = [item for item in pending if (item["to"], item["type"]) in sent]
        remaining = [item for item in state.get_json(RECEIPT_OUTBOX) or [] if item not in flushed]
        state.put_json(RECEIPT_OUTBOX, remaining)
    return deferred


class ReceiptFlusher:
    """Posts the outbox's receipts in the background while `Receiver.listen` runs: one flush
    at a time, and one more after it whenever receipts were queued meanwhile. A flush that
    fails leaves its receipts in the outbox for the next one (or the next sync)."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._again = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def wanted(self) -> None:
        self._again = True
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._again:
            self._again = False
            try:
                await self._receiver.flush_receipts()
            except Exception:  # kept in the outbox: the next flush or sync posts them
                log.warning("posting receipts failed; they stay queued", exc_info=True)
                return

    def close(self) -> None:
        """Stop flushing: whatever is still queued goes out with the next sync or listen."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
