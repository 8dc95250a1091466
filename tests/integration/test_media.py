"""Cloud API media end to end: upload (pywa and raw multipart), describe, download with the same
token, delete, limits, tenant isolation, sending by id and by link (the customer's SDK
decrypts the E2E attachment), receiving a customer's file, no plaintext at rest, expiry."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import business_support
import httpx
import media_support
import pytest
from business_support import Receiver, provision_shop, pywa_client, run_in_thread, serving
from media_support import PDF, png
from test_business_api import CUSTOMER, collect, customer_device, messages

from conftest import RunningServer
from tidings.business.media import BusinessMediaService, MediaUnavailable
from tidings.business.media_types import KINDS
from tidings.cli.business import _create
from tidings.outbound import OutboundPolicy
from tidings.runtime import build_runtime

BUSINESS = "+15550109999"
MARKER = b"MEDIA-PLAINTEXT-7f3a9c-DO-NOT-LEAK"


receiver = business_support.receiver
links = media_support.links


@pytest.fixture
def shop(settings, clock, receiver):
    made = provision_shop(settings, receiver, BUSINESS)
    with serving(settings, clock) as server:
        yield made, server


def api_client(server: RunningServer, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def upload(api: httpx.AsyncClient, phone_number_id: str, data: bytes, **fields: Any):
    name = fields.pop("filename", "file.png")
    content_type = fields.pop("content_type", "image/png")
    form = {"messaging_product": "whatsapp", **fields}
    return await api.post(
        f"/v23.0/{phone_number_id}/media",
        data={k: v for k, v in form.items() if v is not None},
        files={"file": (name, data, content_type)},
    )


def graph_code(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error"]["code"]


def _statuses(receiver: Receiver) -> list[dict[str, Any]]:
    return receiver.statuses()


async def test_pywa_uploads_describes_downloads_and_deletes(shop) -> None:
    made, server = shop
    wa = pywa_client(made, server.url)
    image = png(MARKER)
    uploaded = await asyncio.to_thread(
        wa.upload_media, media=image, mime_type="image/png", filename="photo.png"
    )
    assert uploaded.id.isdigit()
    url = await asyncio.to_thread(wa.get_media_url, uploaded.id)
    assert url.mime_type == "image/png" and url.file_size == len(image)
    assert url.sha256 == hashlib.sha256(image).hexdigest()
    assert url.url.startswith(server.url + "/")
    assert await asyncio.to_thread(wa.get_media_bytes, url.url) == image
    # The same with a plain client: the URL demands the same bearer token.
    async with api_client(server, made.access_token) as api:
        info = (await api.get(f"/v21.0/{uploaded.id}")).json()
        assert info["messaging_product"] == "whatsapp" and info["id"] == uploaded.id
        got = await api.get(info["url"])
        assert got.status_code == 200 and got.content == image
        assert got.headers["content-type"] == "image/png"
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(info["url"])).status_code == 401
        tampered = info["url"].replace("hash=", "hash=0")
        assert (await api.get(tampered)).status_code == 404
        # The URL is valid for 5 minutes.
        server.clock.advance(minutes=6)
        assert (await api.get(info["url"])).status_code == 404
        fresh = (await api.get(f"/{uploaded.id}")).json()["url"]
        assert (await api.get(fresh)).content == image
    assert (await asyncio.to_thread(wa.delete_media, uploaded.id)).success
    async with api_client(server, made.access_token) as api:
        gone = await api.get(f"/v23.0/{uploaded.id}")
        assert graph_code(gone) == (400, 100) and gone.json()["error"]["error_subcode"] == 33
        assert (await api.get(fresh)).status_code == 404
        # The phone number node is still served on the same path shape.
        node = await api.get(f"/v23.0/{made.phone_number_id}")
        assert node.json()["id"] == made.phone_number_id


async def test_raw_multipart_as_clients_send_it(shop) -> None:
    made, server = shop
    image = png(MARKER)
    async with api_client(server, made.access_token) as api:
        # messaging_product in the query, no `type`, a full Windows path, a generic part type.
        response = await api.post(
            f"/{made.phone_number_id}/media",
            params={"messaging_product": "whatsapp"},
            files={"file": ("C:\\Users\\me\\Pictures\\shop front.png", image, "")},
        )
        assert response.status_code == 200, response.text
        media_id = response.json()["id"]
        info = (await api.get(f"/v23.0/{media_id}")).json()
        assert info["mime_type"] == "image/png"
        got = await api.get(info["url"])
        assert "shop%20front.png" in got.headers["content-disposition"]
        assert got.content == image
        pdf = await upload(
            api, made.phone_number_id, PDF, filename="/tmp/invoice.pdf", content_type="x/y"
        )
        assert pdf.status_code == 400  # a declared part type that is no media type
        pdf = await upload(
            api,
            made.phone_number_id,
            PDF,
            filename="/tmp/invoice.pdf",
            content_type="application/octet-stream",
        )
        assert pdf.status_code == 200, pdf.text
        described = (await api.get(f"/{pdf.json()['id']}")).json()
        assert described["mime_type"] == "application/pdf"


async def test_limits_and_type_checks(shop) -> None:
    made, server = shop
    phone = made.phone_number_id
    too_big = png(padding=KINDS["image"].max_bytes)
    async with api_client(server, made.access_token) as api:
        cases = [
            (upload(api, phone, too_big), (400, 131053)),
            (upload(api, phone, PDF, type="image/png"), (400, 131053)),  # bytes are a PDF
            (upload(api, phone, png(), type="image/webp"), (400, 131053)),
            (upload(api, phone, b"PK\x03\x04zip", type="application/zip"), (400, 131053)),
            (upload(api, phone, png(), type="text/plain"), (400, 131053)),
            (
                upload(
                    api,
                    phone,
                    b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 600 * 1024,
                    type="image/webp",
                ),
                (400, 131053),
            ),  # stickers: 500 KB
            (upload(api, phone, png(), messaging_product="sms"), (400, 100)),
            (
                api.post(f"/v23.0/{phone}/media", data={"messaging_product": "whatsapp"}),
                (400, 131008),
            ),
            (
                api.post(f"/v23.0/{phone}/media", files={"file": ("a.png", png(), "image/png")}),
                (400, 131008),
            ),
        ]
        for request, expected in cases:
            response = await request
            assert graph_code(response) == expected, response.text
        ok = await upload(api, phone, b"just some text\n", type="text/plain", filename="a.txt")
        assert ok.status_code == 200, ok.text
        sticker = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 1000
        assert (await upload(api, phone, sticker, type="image/webp")).status_code == 200
        # An image id cannot be sent as a video; an unknown id is refused at once.
        image_id = (await upload(api, phone, png())).json()["id"]
        for kind, media_id in (("video", image_id), ("image", "123456789012345")):
            response = await api.post(
                f"/v23.0/{phone}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "to": CUSTOMER,
                    "type": kind,
                    kind: {"id": media_id},
                },
            )
            assert graph_code(response) == (400, 131053), response.text


async def test_media_of_another_business_looks_absent(shop, settings) -> None:
    made, server = shop
    other = await asyncio.to_thread(
        run_in_thread, lambda: _create(settings, "Other Co", "+15550109998")
    )
    async with api_client(server, made.access_token) as api:
        media_id = (await upload(api, made.phone_number_id, png())).json()["id"]
        url = (await api.get(f"/v23.0/{media_id}")).json()["url"]
        mismatch = await api.get(f"/v23.0/{media_id}", params={"phone_number_id": "1234"})
        assert graph_code(mismatch) == (400, 100)
        mine = await api.get(f"/v23.0/{media_id}", params={"phone_number_id": made.phone_number_id})
        assert mine.status_code == 200
    async with api_client(server, other.access_token) as intruder:
        for method in ("GET", "DELETE"):
            absent = await intruder.request(method, "/v23.0/123456789012345")
            response = await intruder.request(method, f"/v23.0/{media_id}")
            body = response.json()["error"]
            assert (response.status_code, body["code"], body["error_subcode"]) == (400, 100, 33)
            expected = absent.json()["error"]["error_data"]["details"]
            assert body["error_data"]["details"] == expected.replace("123456789012345", media_id)
        assert (await intruder.get(url)).status_code == 404
        sent = await intruder.post(
            f"/v23.0/{other.phone_number_id}/messages",
            json={
                "messaging_product": "whatsapp",
                "to": CUSTOMER,
                "type": "image",
                "image": {"id": media_id},
            },
        )
        assert graph_code(sent) == (400, 131053)
    async with api_client(server, made.access_token) as api:
        assert (await api.get(url)).status_code == 200  # untouched by the intruder


async def test_send_image_by_id_and_by_link_reaches_the_customer(
    shop, settings, clock, receiver, links, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    by_id, by_link = png(MARKER + b"-id"), png(MARKER + b"-link")
    links.files["/catalog/item.png"] = ("image/png", by_link)
    links.files["/manual.pdf"] = ("application/pdf", PDF)
    try:
        async with api_client(server, made.access_token) as api:
            media_id = (await upload(api, made.phone_number_id, by_id)).json()["id"]
            url = f"/v23.0/{made.phone_number_id}/messages"
            bodies = [
                {"type": "image", "image": {"id": media_id, "caption": "Your parcel"}},
                {"type": "image", "image": {"link": f"{links.base}/catalog/item.png"}},
                {"type": "document", "document": {"link": f"{links.base}/manual.pdf"}},
            ]
            for body in bodies:
                response = await api.post(
                    url, json={"messaging_product": "whatsapp", "to": CUSTOMER, **body}
                )
                assert response.status_code == 200, response.text
        got = messages(await collect(customer, lambda ev: len(messages(ev)) >= 3))
        by_type: dict[str, list[Any]] = {}
        for message in got:
            by_type.setdefault(message.content["type"], []).append(message)
        images = {m.content["image"].get("caption"): m for m in by_type["image"]}
        first = images["Your parcel"].content["image"]
        assert first["attachment"]["mime_type"] == "image/png" and "id" not in first
        assert await customer.download_attachment(first["attachment"]) == by_id
        linked = images[None].content["image"]["attachment"]
        assert await customer.download_attachment(linked) == by_link
        document = by_type["document"][0].content["document"]
        assert document["attachment"]["filename"] == "manual.pdf"
        assert await customer.download_attachment(document["attachment"]) == PDF
        assert images["Your parcel"].text == "Your parcel"
    finally:
        await customer.close()


async def test_a_failing_link_is_reported_in_a_failed_status(
    shop, settings, clock, receiver, links, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    links.files["/fake.png"] = ("image/png", PDF)
    try:
        async with api_client(server, made.access_token) as api:
            wamids = []
            for link in (f"{links.base}/missing.png", f"{links.base}/fake.png", "not-a-url"):
                response = await api.post(
                    f"/v23.0/{made.phone_number_id}/messages",
                    json={
                        "messaging_product": "whatsapp",
                        "to": CUSTOMER,
                        "type": "image",
                        "image": {"link": link},
                    },
                )
                assert response.status_code == 200, response.text
                wamids.append(response.json()["messages"][0]["id"])
        receiver.wait_for(lambda _posts: {s["id"] for s in receiver.statuses()} >= set(wamids))
        for status in receiver.statuses():
            assert status["status"] == "failed" and status["errors"][0]["code"] == 131053
    finally:
        await customer.close()


async def test_customer_image_arrives_as_webhook_media_the_business_downloads(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path, window=False)
    photo = png(MARKER + b"-from-customer")
    try:
        descriptor = await customer.upload_attachment(photo, "image/png")
        await customer.send_content(
            BUSINESS,
            {"type": "image", "image": {"attachment": descriptor, "caption": "broken lid"}},
        )
        receiver.wait_for(lambda _posts: receiver.messages())
        [message] = receiver.messages()
        assert message["type"] == "image", message
        image = message["image"]
        assert image["mime_type"] == "image/png" and image["caption"] == "broken lid"
        assert image["sha256"] == hashlib.sha256(photo).hexdigest()
        wa = pywa_client(made, server.url)
        url = await asyncio.to_thread(wa.get_media_url, image["id"])
        assert await asyncio.to_thread(wa.get_media_bytes, url.url) == photo
        # Received media ids expire after 7 days, as Meta's do.
        clock.advance(days=7, seconds=1)
        async with api_client(server, made.access_token) as api:
            assert (await api.get(f"/v23.0/{image['id']}")).status_code == 400
        # A file that is not what it claims arrives as unsupported.
        fake = await customer.upload_attachment(PDF, "image/png")
        await customer.send_content(BUSINESS, {"type": "image", "image": {"attachment": fake}})
        receiver.wait_for(lambda _posts: len(receiver.messages()) >= 2)
        refused = receiver.messages()[1]
        assert refused["type"] == "unsupported" and refused["errors"][0]["code"] == 131051
    finally:
        await customer.close()


def test_no_plaintext_in_the_database_or_the_blob_store(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop

    async def scenario() -> None:
        customer = await customer_device(settings, clock, server.url, tmp_path)
        try:
            async with api_client(server, made.access_token) as api:
                media_id = (await upload(api, made.phone_number_id, png(MARKER))).json()["id"]
                await api.post(
                    f"/v23.0/{made.phone_number_id}/messages",
                    json={
                        "messaging_product": "whatsapp",
                        "to": CUSTOMER,
                        "type": "image",
                        "image": {"id": media_id},
                    },
                )
            [got] = messages(await collect(customer, lambda ev: messages(ev)))
            assert MARKER in await customer.download_attachment(got.content["image"]["attachment"])
            descriptor = await customer.upload_attachment(png(MARKER), "image/png")
            await customer.send_content(
                BUSINESS, {"type": "image", "image": {"attachment": descriptor}}
            )
            receiver.wait_for(lambda _posts: any(m["type"] == "image" for m in receiver.messages()))
        finally:
            await customer.close()

    asyncio.run(scenario())
    blob_files = [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]
    # One upload, its attachment for the customer, the customer's attachment, the received copy.
    assert len(blob_files) == 4
    for path in blob_files:
        assert MARKER not in path.read_bytes(), path
    from test_core_registration import _dump_database

    assert MARKER.decode() not in _dump_database(server)
    if settings.is_sqlite:
        raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("tidings.db*"))
        assert MARKER not in raw


async def test_media_and_attachments_expire_after_30_days(shop, settings, clock, tmp_path) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    try:
        async with api_client(server, made.access_token) as api:
            media_id = (await upload(api, made.phone_number_id, png())).json()["id"]
            descriptor = await customer.upload_attachment(b"notes", "text/plain")
            clock.advance(days=29)
            assert (await api.get(f"/v23.0/{media_id}")).status_code == 200
            assert await customer.download_attachment(descriptor) == b"notes"
            clock.advance(days=1, seconds=1)
            assert graph_code(await api.get(f"/v23.0/{media_id}")) == (400, 100)
            response = await api.post(
                f"/v23.0/{made.phone_number_id}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "to": CUSTOMER,
                    "type": "image",
                    "image": {"id": media_id},
                },
            )
            assert graph_code(response) == (400, 131053)
        with pytest.raises(Exception, match="expired"):
            await customer.download_attachment(descriptor)
        blobs = settings.data_dir / "blobs"
        # The business worker purges on its periodic pass too; either way nothing is left.
        media_purged, attachments_purged = await asyncio.to_thread(
            run_in_thread, lambda: _purge(settings, clock)
        )
        assert media_purged <= 1 and attachments_purged <= 1
        assert not any(p.is_file() for p in blobs.rglob("*"))
    finally:
        await customer.close()


async def _purge(settings, clock) -> tuple[int, int]:
    runtime = build_runtime(settings, clock=clock)
    try:
        return (
            await runtime.business_media.purge_expired(),
            await runtime.attachments.purge_expired(),
        )
    finally:
        await runtime.close()


async def test_production_policy_refuses_loopback_links(settings, clock, links) -> None:
    links.files["/a.png"] = ("image/png", png())
    runtime = build_runtime(settings, clock=clock)
    try:
        embedded = runtime.business_media
        data, mime = await embedded.fetch_link(f"{links.base}/a.png", "image")
        assert (data, mime) == (png(), "image/png")
        production = BusinessMediaService(
            database=runtime.database,
            clock=clock,
            sealer=runtime.sealer,
            blobs=runtime.blobs,
            policy=OutboundPolicy.production(),
        )
        port = links.base.rsplit(":", 1)[1]
        for url in (f"{links.base}/a.png", f"https://127.0.0.1:{port}/a.png"):
            with pytest.raises(MediaUnavailable) as refused:
                await production.fetch_link(url, "image")
            assert refused.value.graph_code == 131053
        assert "loopback" in refused.value.message
        assert links.hits == ["/a.png"]  # only the embedded fetch reached the server
    finally:
        await runtime.close()
