"""The receipt outbox: receipts ride on an ack or go by HTTP, one way at a time, and leave the
outbox only once the server answered for them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from tidings.protocol import api
from tidings.sdk import ProfileStore
from tidings.sdk import errors as sdk_errors
from tidings.sdk.errors import SdkError
from tidings.sdk.receipts import ReceiptOutbox
from tidings.sdk.store import RECEIPT_OUTBOX

ALICE, CAROL = "+15550100001", "+15550100003"


class Server:
    """The receipts endpoint as the device sees it: records each request, or refuses it."""

    def __init__(self) -> None:
        self.posted: list[api.ReceiptRequest] = []
        self.refusal: SdkError | None = None

    async def receipt(self, request: api.ReceiptRequest) -> int:
        if self.refusal is not None:
            raise self.refusal
        self.posted.append(request)
        return 1


def _outbox(tmp_path) -> tuple[ReceiptOutbox, ProfileStore, Server]:  # type: ignore[no-untyped-def]
    store = ProfileStore.create(tmp_path / "p")
    server = Server()
    return ReceiptOutbox(SimpleNamespace(store=store, api=server)), store, server  # type: ignore[arg-type]


def _queue(store: ProfileStore, *items: dict[str, Any]) -> None:
    with store.transaction() as state:
        for item in items:
            state.append(RECEIPT_OUTBOX, item)


def _queued(store: ProfileStore) -> list[dict[str, Any]]:
    with store.snapshot() as state:
        return state.get_json(RECEIPT_OUTBOX) or []


def _delivered(to: str, *ids: str) -> dict[str, Any]:
    return {"to": to, "type": "delivered", "ids": list(ids)}


def test_receipts_ride_once_grouped_and_leave_when_answered(tmp_path) -> None:
    outbox, store, server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"), _delivered(ALICE, "m2"), _delivered(CAROL, "m3"))
    receipts, ref = outbox.ride_along()
    assert ref is not None
    assert receipts == [
        {"to": ALICE, "type": "delivered", "message_ids": ["m1", "m2"]},
        {"to": CAROL, "type": "delivered", "message_ids": ["m3"]},
    ]
    # On their way: neither another frame nor a post takes them again.
    assert outbox.ride_along() == ([], None)
    assert asyncio.run(outbox.post()) is False and server.posted == []
    _queue(store, _delivered(ALICE, "m4"))  # queued meanwhile: survives the answer
    outbox.answered({"type": "acked", "ref": ref, "receipts": [{"filed": 1}, {"filed": 1}]})
    assert _queued(store) == [_delivered(ALICE, "m4")]
    outbox.answered({"type": "acked", "ref": ref, "receipts": []})  # a ref answered twice
    assert _queued(store) == [_delivered(ALICE, "m4")]


def test_a_refused_receipt_leaves_the_outbox_too(tmp_path) -> None:
    outbox, store, _server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"))
    _receipts, ref = outbox.ride_along()
    outbox.answered({"type": "acked", "ref": ref, "receipts": [{"error": {"code": "x"}}]})
    assert _queued(store) == []


def test_receipts_whose_frame_got_no_answer_are_posted(tmp_path) -> None:
    outbox, store, server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"))
    _receipts, ref = outbox.ride_along()
    outbox.connection_ended()
    outbox.answered({"type": "acked", "ref": ref, "receipts": [{"filed": 1}]})  # too late
    assert _queued(store) == [_delivered(ALICE, "m1")]
    assert asyncio.run(outbox.post()) is False
    assert [(r.to, r.message_ids) for r in server.posted] == [(ALICE, ["m1"])]
    assert _queued(store) == []


def test_a_reply_silent_on_receipts_hands_them_to_the_next_post(tmp_path) -> None:
    """A server that ignored the receipts (it predates them) acknowledged only the envelopes."""
    outbox, store, server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"))
    _receipts, ref = outbox.ride_along()
    outbox.answered({"type": "acked", "ref": ref, "deleted": 1, "seqs": [4]})
    assert _queued(store) == [_delivered(ALICE, "m1")]
    asyncio.run(outbox.post())
    assert [r.message_ids for r in server.posted] == [["m1"]] and _queued(store) == []


def test_the_same_item_queued_twice_goes_twice(tmp_path) -> None:
    outbox, store, _server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"))
    first, _ref = outbox.ride_along()
    _queue(store, _delivered(ALICE, "m1"))
    second, _ref = outbox.ride_along()
    assert first == second == [{"to": ALICE, "type": "delivered", "message_ids": ["m1"]}]


def test_an_ack_carries_at_most_its_limit_and_the_rest_waits(tmp_path) -> None:
    outbox, store, _server = _outbox(tmp_path)
    senders = [f"+1555020{n:04d}" for n in range(api.MAX_RECEIPTS_PER_FRAME + 20)]
    _queue(store, *(_delivered(phone, "m") for phone in senders))
    receipts, _ref = outbox.ride_along()
    assert [r["to"] for r in receipts] == senders[: api.MAX_RECEIPTS_PER_FRAME]
    rest, _ref = outbox.ride_along()
    assert [r["to"] for r in rest] == senders[api.MAX_RECEIPTS_PER_FRAME :]


def test_a_post_keeps_what_failed_for_a_passing_reason_and_drops_a_refusal(tmp_path) -> None:
    outbox, store, server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"))
    server.refusal = SdkError(sdk_errors.NETWORK_ERROR, "cannot reach the server")
    assert asyncio.run(outbox.post()) is True
    assert _queued(store) == [_delivered(ALICE, "m1")]
    receipts, _ref = outbox.ride_along()  # free again for the next way out
    assert [r["message_ids"] for r in receipts] == [["m1"]]
    outbox.connection_ended()
    server.refusal = SdkError("unknown_account", "no such account")
    assert asyncio.run(outbox.post()) is False
    assert _queued(store) == []


def test_loose_says_whether_a_listener_must_post(tmp_path) -> None:
    """A listener posts only when receipts wait on no way out: left over by a full frame,
    given back by an ended connection or a failed post; not when every one rode along."""
    outbox, store, server = _outbox(tmp_path)
    assert outbox.loose  # nothing looked at yet
    _queue(store, _delivered(ALICE, "m1"))
    outbox.ride_along()
    assert not outbox.loose
    outbox.connection_ended()
    assert outbox.loose
    _receipts, ref = outbox.ride_along()
    outbox.answered({"type": "acked", "ref": ref, "receipts": [{"filed": 1}]})
    assert not outbox.loose and _queued(store) == []
    senders = [f"+1555020{n:04d}" for n in range(api.MAX_RECEIPTS_PER_FRAME + 1)]
    _queue(store, *(_delivered(phone, "m") for phone in senders))
    outbox.ride_along()
    assert outbox.loose  # one left behind
    server.refusal = SdkError(sdk_errors.NETWORK_ERROR, "cannot reach the server")
    assert asyncio.run(outbox.post()) is True
    assert outbox.loose  # given back
    server.refusal = None
    assert asyncio.run(outbox.post()) is False
    assert not outbox.loose and [r.to for r in server.posted] == senders[-1:]


def test_a_post_for_a_caller_who_must_know_takes_riding_receipts_too(tmp_path) -> None:
    outbox, store, server = _outbox(tmp_path)
    _queue(store, _delivered(ALICE, "m1"))
    _receipts, ref = outbox.ride_along()
    assert asyncio.run(outbox.post()) is False and server.posted == []
    assert asyncio.run(outbox.post(riding_too=True)) is False
    assert [r.message_ids for r in server.posted] == [["m1"]] and _queued(store) == []
    _queue(store, _delivered(ALICE, "m1"))  # the same receipt queued again meanwhile
    outbox.answered({"type": "acked", "ref": ref, "receipts": [{"filed": 1}]})
    # The frame's late answer takes out an item equal to what it carried: here the copy
    # queued again, a receipt the server filed twice already. Nothing stays on its way.
    assert _queued(store) == [] and outbox.ride_along() == ([], None)
