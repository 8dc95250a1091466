"""Receipts a device sends (delivered, read): queued in the sealed outbox in the transaction
that produced them, sent after, and kept there until the server has answered for them.

They leave two ways. A live listener sends the receipts its envelopes queued with their
websocket ack (`ride_along`): one frame and one unit of work on the server instead of a
request of their own; the `acked` reply, echoing the frame's ref, lets them leave the outbox
(`settle`); a listener's reads leave on its socket too, in ack frames without envelopes.
Whatever is not on its way so (nothing listens, or a frame's connection died before the
reply) is posted over HTTP (`post`), one request per sender and type. An item is on one way
at a time; a connection that ends gives its items back for the next flush."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from tidings.protocol import api
from tidings.sdk.errors import SdkError, is_passing
from tidings.sdk.store import RECEIPT_OUTBOX

if TYPE_CHECKING:
    from tidings.sdk.client import DeviceClient
    from tidings.sdk.receive import Receiver

log = logging.getLogger(__name__)

IDS_PER_RECEIPT = 100  # api.ReceiptRequest.message_ids

Item = dict[str, Any]  # {"to": phone, "type": "delivered" | "read", "ids": [message id, ...]}


def _key(item: Item) -> tuple[str, str, tuple[str, ...]]:
    return item["to"], item["type"], tuple(item["ids"])


def _grouped(items: list[Item]) -> dict[tuple[str, str], list[Item]]:
    """The items by (sender, type), in order: each group leaves as one run of requests."""
    groups: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        groups.setdefault((item["to"], item["type"]), []).append(item)
    return groups


def _requests(to: str, kind: str, group: list[Item]) -> list[api.ReceiptRequest]:
    ids = [message_id for item in group for message_id in item["ids"]]
    return [
        api.ReceiptRequest(
            to=to,
            type="read" if kind == "read" else "delivered",
            message_ids=ids[start : start + IDS_PER_RECEIPT],
        )
        for start in range(0, len(ids), IDS_PER_RECEIPT)
    ]


class ReceiptOutbox:
    """The device's queued receipts, and which of them are on their way out."""

    def __init__(self, client: DeviceClient) -> None:
        self._client = client
        self._in_flight: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
        self._frames: dict[str, list[Item]] = {}  # ref of an ack frame -> its receipts' items
        self._refs = itertools.count(1)
        # Receipts may wait on no way out (left over by a full frame, or given back): a
        # listener posts them. Cleared when a look at the whole outbox took everything, so a
        # listener whose receipts all ride on its acks reads the outbox once per frame.
        self.loose = True

    def _pending(self) -> list[Item]:
        with self._client.store.snapshot() as state:
            pending: list[Item] = state.get_json(RECEIPT_OUTBOX) or []
        return pending

    def _take(self, pending: list[Item]) -> list[Item]:
        """The items of `pending` not yet on their way (an item queued twice counts twice)."""
        skip = Counter(self._in_flight)
        fresh: list[Item] = []
        for item in pending:
            key = _key(item)
            if skip[key] > 0:
                skip[key] -= 1
            else:
                fresh.append(item)
        return fresh

    def _mark(self, items: list[Item]) -> None:
        self._in_flight.update(_key(item) for item in items)

    def _unmark(self, items: list[Item]) -> None:
        self._in_flight.subtract(_key(item) for item in items)
        self._in_flight += Counter()  # drop the keys that reached zero

    def _release(self, items: list[Item]) -> None:
        """`items` are on no way out any more, but still queued."""
        if items:
            self.loose = True
        self._unmark(items)

    def _settle(self, items: list[Item]) -> None:
        """The server answered for `items`: out of the outbox (items queued since survive;
        items already gone, posted while their frame was out, are not looked for)."""
        answered = Counter(_key(item) for item in items)
        # Not synced: a removal lost to a power cut only sends these receipts again.
        with self._client.store.transaction(synced=False) as state:
            remaining: list[Item] = []
            for item in state.get_json(RECEIPT_OUTBOX) or []:
                key = _key(item)
                if answered[key] > 0:
                    answered[key] -= 1
                else:
                    remaining.append(item)
            state.put_json(RECEIPT_OUTBOX, remaining)

    # -- with an ack, over the websocket ---------------------------------------------------

    def ride_along(self) -> tuple[list[dict[str, Any]], str | None]:
        """Receipts for the next ack frame (as many items as fit its limit) and the frame's
        ref; ([], None) when nothing waits."""
        fresh = self._take(self._pending())
        chosen: list[Item] = []
        sizes: dict[tuple[str, str], int] = {}  # ids per (sender, type) so far
        count = 0
        for item in fresh:
            group = (item["to"], item["type"])
            before = sizes.get(group, 0)
            after = before + len(item["ids"])
            added = -(-after // IDS_PER_RECEIPT) - -(-before // IDS_PER_RECEIPT)
            if count + added > api.MAX_RECEIPTS_PER_FRAME:
                break
            sizes[group], count = after, count + added
            chosen.append(item)
        self.loose = len(chosen) < len(fresh)
        if not chosen:
            return [], None
        ref = f"r{next(self._refs)}"
        self._frames[ref] = chosen
        self._mark(chosen)
        receipts = [
            request.model_dump()
            for (to, kind), group in _grouped(chosen).items()
            for request in _requests(to, kind, group)
        ]
        return receipts, ref

    def answered(self, frame: dict[str, Any]) -> None:
        """The server's `acked` reply to a frame that carried receipts: each was filed or
        refused for good (a refusal is logged), so they all leave the outbox. A reply that
        says nothing of them (a server that ignored them) hands them to the next post."""
        ref = frame.get("ref")
        items = self._frames.pop(ref, None) if isinstance(ref, str) else None
        if items is None:
            return
        outcomes = frame.get("receipts")
        if not isinstance(outcomes, list):
            self._release(items)
            return
        for outcome in outcomes:
            if isinstance(outcome, dict) and "error" in outcome:
                log.warning("a receipt was refused: %s", outcome["error"])
        self._unmark(items)
        self._settle(items)

    def connection_ended(self) -> None:
        """The frames sent on a connection that ended will get no reply: their receipts go
        out with the next post (the server may have filed them: a receipt twice is harmless)."""
        for items in self._frames.values():
            self._release(items)
        self._frames.clear()

    # -- over HTTP --------------------------------------------------------------------------

    async def post(self, *, riding_too: bool = False) -> bool:
        """Post the receipts not already on their way (`riding_too`: and those in frames not
        yet answered, for a caller that must know they were filed), one request per sender
        and type (100 ids each); keep what fails for a passing reason. True when something
        was kept."""
        pending = self._pending()
        fresh = self._take(pending)
        self.loose = False  # all of it is on its way now; what fails is given back
        chosen = pending if riding_too else fresh
        if not chosen:
            return False
        self._mark(fresh)
        deferred = False
        answered: list[Item] = []
        try:
            for (to, kind), group in _grouped(chosen).items():
                try:
                    for request in _requests(to, kind, group):
                        await self._client.api.receipt(request)
                except SdkError as exc:
                    if is_passing(exc):
                        deferred = True
                        continue
                    log.warning("receipt to %s dropped: %s", to, exc)
                answered.extend(group)
        finally:
            # Whatever happened (even a cancelled flush), what was answered leaves the outbox
            # and the rest is free for the next try.
            done = {id(item) for item in answered}
            self._unmark(fresh)
            if any(id(item) not in done for item in fresh):
                self.loose = True
            if answered:
                self._settle(answered)
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
