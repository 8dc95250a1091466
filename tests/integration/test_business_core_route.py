"""The API devices' in-process route to the core answers exactly as the HTTP routes do: the
same pages, counts and refusals (code, message, status and details), without any HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tidings.app import create_app
from tidings.business.core_route import InProcessCore
from tidings.crypto.encoding import b64
from tidings.protocol import api
from tidings.runtime import Runtime
from tidings.sdk import DeviceClient
from tidings.sdk.errors import SdkError
from tidings.sdk.http import ServerApi

ALICE = "+15550100001"
BOB = "+15550100002"
NOBODY = "+15550100099"
BASE = "http://tidings.internal"


class NoHttp(httpx.AsyncBaseTransport):
    """Fails every request: what goes through it did not take the in-process route."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"{request.method} {request.url.path} went over HTTP")


async def device(local: Runtime, app: Any, phone: str, folder: Path) -> DeviceClient:
    async with local.database.unit_of_work() as uow:
        code = (await local.accounts.invite(uow, phone)).code
    return await DeviceClient.register(
        BASE, phone, code, folder / phone.lstrip("+"), transport=httpx.ASGITransport(app=app)
    )


def routed(local: Runtime, token: str) -> ServerApi:
    direct = ServerApi(BASE, token, transport=NoHttp())
    direct.core_route = InProcessCore(local.devices, local.mailbox)
    return direct


def http(app: Any, token: str) -> ServerApi:
    return ServerApi(BASE, token, transport=httpx.ASGITransport(app=app))


def fields(exc: SdkError) -> tuple[str, str, int | None, dict[str, Any]]:
    return exc.code, exc.message, exc.status, exc.details


async def refusal(call: Any) -> tuple[str, str, int | None, dict[str, Any]]:
    with pytest.raises(SdkError) as caught:
        await call
    return fields(caught.value)


async def test_pages_acks_and_receipts_match_the_http_routes(local: Runtime, tmp_path) -> None:
    app = create_app(local)
    alice = await device(local, app, ALICE, tmp_path)
    bob = await device(local, app, BOB, tmp_path)
    try:
        await alice.send_text(BOB, "one")
        await alice.send_text(BOB, "two")
        assert bob.api.token is not None
        direct, over_http = routed(local, bob.api.token), http(app, bob.api.token)
        page = await direct.mailbox(0, 100)
        assert page == await over_http.mailbox(0, 100)
        assert [e.kind for e in page.envelopes] == ["message", "message"]
        assert page.keys is not None  # the first page of a sync carries the key status
        later = await direct.mailbox(page.envelopes[0].seq, 100)
        assert later == await over_http.mailbox(page.envelopes[0].seq, 100)
        assert [e.seq for e in later.envelopes] == [page.envelopes[1].seq]
        ids = [e.message_id for e in page.envelopes]
        assert await direct.receipt(api.ReceiptRequest(to=ALICE, type="delivered", message_ids=ids))
        assert await direct.ack([page.envelopes[0].seq]) == 1
        assert await over_http.ack([page.envelopes[0].seq]) == 0  # gone already
        assert [e.seq for e in (await direct.mailbox(0, 100)).envelopes] == [page.envelopes[1].seq]
        # Alice's device gets the receipt filed through the in-process route.
        receipts = [e for e in await alice.sync() if type(e).__name__ == "ReceiptEvent"]
        assert [r.message_ids for r in receipts] == [tuple(ids)]
        await direct.close()
        await over_http.close()
    finally:
        await alice.close()
        await bob.close()


async def test_refusals_match_the_http_routes(local: Runtime, tmp_path) -> None:
    app = create_app(local)
    alice = await device(local, app, ALICE, tmp_path)
    bob = await device(local, app, BOB, tmp_path)
    try:
        assert alice.api.token is not None
        direct, over_http = routed(local, alice.api.token), http(app, alice.api.token)
        body = b64(b"not really a ciphertext")
        mismatched = api.SendRequest(
            message_id="m-1",
            to=BOB,
            envelopes=[api.OutgoingEnvelope(phone=BOB, device_id=99, type=0, body=body)],
        )
        unknown = api.SendRequest(
            message_id="m-2",
            to=NOBODY,
            envelopes=[api.OutgoingEnvelope(phone=NOBODY, device_id=1, type=0, body=body)],
        )
        got = await direct.send_batch([mismatched, unknown])
        expected = await over_http.send_batch([mismatched, unknown])
        assert all(isinstance(r, SdkError) for r in got + expected)
        assert [fields(r) for r in got] == [fields(r) for r in expected]  # type: ignore[arg-type]
        assert got[0].code == "mismatched_devices" and got[0].status == 409  # type: ignore[union-attr]
        assert got[0].details["accounts"][BOB]["extra"] == [99]  # type: ignore[union-attr]
        receipt = api.ReceiptRequest(to=NOBODY, type="read", message_ids=["x"])
        assert await refusal(direct.receipt(receipt)) == await refusal(over_http.receipt(receipt))
        # A revoked or made-up token is refused the same way on every call.
        forged = routed(local, "not-a-token"), http(app, "not-a-token")
        for calls in (
            lambda a: a.mailbox(0, 100),
            lambda a: a.ack([1]),
            lambda a: a.send_batch([mismatched]),
            lambda a: a.receipt(receipt),
        ):
            assert await refusal(calls(forged[0])) == await refusal(calls(forged[1]))
        assert (await refusal(forged[0].mailbox(0, 100)))[2] == 401
        for api_ in (direct, over_http, *forged):
            await api_.close()
    finally:
        await alice.close()
        await bob.close()
