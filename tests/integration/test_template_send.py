"""Sending templates end to end: pywa's `send_template` (and raw requests) against our server,
the approved version rendered with every parameter type and received by a customer's device
over the network, and a quick-reply tap coming back as a Cloud API `button` webhook."""

from __future__ import annotations

import asyncio
from typing import Any

import template_send_support
import typer
from business_support import Receiver, pywa_client, run_in_thread
from media_support import PDF, png
from pywa import handlers
from pywa.types.templates import (
    BodyText,
    Currency,
    DateTime,
    HeaderDocument,
    HeaderImage,
    HeaderText,
    QuickReplyButton,
    TemplateLanguage,
    URLButton,
)
from template_send_support import (
    BUSINESS,
    CUSTOMER,
    MP4,
    ORDER_UPDATE,
    RECEIPT_IMAGE,
    TABLE_BOOKING,
    body_params,
    create_approved,
    send_body,
)
from typer.testing import CliRunner

from conftest import issue_invite
from tidings.cli import client as client_cli
from tidings.sdk import DeviceClient, IncomingMessage

# Fixtures shared with the other template-send tests.
receiver, links, shop = (
    template_send_support.receiver,
    template_send_support.links,
    template_send_support.shop,
)


async def customer_device(settings, clock, server_url: str, tmp_path) -> DeviceClient:
    code = await asyncio.to_thread(issue_invite, settings, CUSTOMER, clock)
    return await DeviceClient.register(server_url, CUSTOMER, code, tmp_path / "customer")


async def received(
    client: DeviceClient, count: int, timeout: float = 20.0
) -> list[IncomingMessage]:
    got: list[IncomingMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < count:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"customer received {len(got)} of {count} messages")
        events = await client.receive_once(min(remaining, 5))
        got.extend(e for e in events if isinstance(e, IncomingMessage))
    return got


def inbound(receiver: Receiver) -> list[dict[str, Any]]:
    return receiver.messages()


async def test_pywa_sends_a_template_the_customer_sees_and_taps(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, ORDER_UPDATE)
    customer = await customer_device(settings, clock, server.url, tmp_path)
    wa = pywa_client(made, server.url)
    taps: list[Any] = []
    wa.add_handlers(
        handlers.CallbackButtonHandler(
            lambda _c, b: taps.append((b.data, b.title, b.reply_to_message.id))
        )
    )
    try:
        sent = await asyncio.to_thread(
            wa.send_template,
            to=CUSTOMER,
            name="order_update",
            language=TemplateLanguage.ENGLISH_US,
            params=[
                HeaderText.params("A-1001"),
                BodyText.params(
                    "Ann",
                    Currency(fallback_value="$19.99", code="USD", amount_1000=19990),
                    DateTime(fallback_value="August 5, 2026"),
                ),
                QuickReplyButton.params(callback_data="ok:A-1001", index=0),
                URLButton.params(url_variable="A-1001?from=wa", index=2),
            ],
        )
        assert sent.id.startswith("wamid.")
        [got] = await received(customer, 1)
        assert got.sender == BUSINESS
        assert got.content == {
            "type": "template",
            "template": {
                "name": "order_update",
                "language": "en_US",
                "category": "UTILITY",
                "header": {"format": "TEXT", "text": "Order A-1001 update"},
                "body": {
                    "text": "Hi Ann, we charged $19.99 for your order, which ships on"
                    " August 5, 2026. Reply below if anything looks wrong."
                },
                "footer": {"text": "Acme Shop customer care"},
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Looks right", "payload": "ok:A-1001"},
                    # No payload given: the tap reports the button's text, as Meta's does.
                    {"type": "QUICK_REPLY", "text": "Change it", "payload": "Change it"},
                    {
                        "type": "URL",
                        "text": "Track",
                        "url": "https://shop.example/track/A-1001?from=wa",
                    },
                    {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+15550100002"},
                ],
            },
        }
        receiver.wait_for(lambda _p: any(s["status"] == "delivered" for s in receiver.statuses()))

        # The customer taps "Looks right": the business gets a `button` message in reply to
        # the template's wamid, and pywa reads it as a quick-reply callback.
        await customer.send_content(
            BUSINESS,
            {
                "type": "button",
                "button": {"text": "Looks right", "payload": "ok:A-1001"},
                "context": {"message_id": got.id},
            },
        )
        receiver.wait_for(lambda _p: any(m["type"] == "button" for m in inbound(receiver)))
        [tap] = [m for m in inbound(receiver) if m["type"] == "button"]
        assert tap["button"] == {"payload": "ok:A-1001", "text": "Looks right"}
        assert tap["context"] == {"from": BUSINESS.lstrip("+"), "id": sent.id}
        assert tap["from"] == CUSTOMER.lstrip("+")
        for post in receiver.posts:
            wa.webhook_update_handler(post.body)
        assert taps == [("ok:A-1001", "Looks right", sent.id)]
    finally:
        await customer.close()


MEDIA_TEMPLATES = [
    RECEIPT_IMAGE,
    {
        "name": "invoice_document",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["4::cGRm"]}},
            {
                "type": "BODY",
                "text": "The invoice for order {{1}} is attached. Pay it within thirty days.",
                "example": {"body_text": [["A-1001"]]},
            },
        ],
    },
    {
        "name": "assembly_video",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "VIDEO", "example": {"header_handle": ["4::dmlk"]}},
            {
                "type": "BODY",
                "text": "This video shows how to assemble item {{1}} from your recent order.",
                "example": {"body_text": [["desk"]]},
            },
        ],
    },
    {
        "name": "pickup_point",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "LOCATION"},
            {
                "type": "BODY",
                "text": "Your parcel {{1}} waits at the pickup point shown above until Friday.",
                "example": {"body_text": [["A-1001"]]},
            },
        ],
    },
    TABLE_BOOKING,
    {
        "name": "summer_offer",
        "language": "en_US",
        "category": "MARKETING",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, our summer sale starts today: take an extra discount on"
                " every pair of shoes in the store.",
                "example": {"body_text": [["Ann"]]},
            },
            {
                "type": "BUTTONS",
                "buttons": [{"type": "COPY_CODE", "example": "SAVE10"}],
            },
        ],
    },
    {
        "name": "login_code",
        "language": "en_US",
        "category": "AUTHENTICATION",
        "components": [
            {"type": "BODY", "add_security_recommendation": True},
            {"type": "FOOTER", "code_expiration_minutes": 10},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]},
        ],
    },
]


async def test_every_parameter_type_renders_on_the_customer_device(
    shop, settings, clock, links, tmp_path
) -> None:
    made, server, graph = shop
    for template in MEDIA_TEMPLATES:
        create_approved(graph, made.waba_id, template)
    receipt = png(b"receipt-header")
    links.files["/invoice.pdf"] = ("application/pdf", PDF)
    links.files["/assembly.mp4"] = ("video/mp4", MP4)
    customer = await customer_device(settings, clock, server.url, tmp_path)
    try:
        uploaded = graph.post(
            f"/v23.0/{made.phone_number_id}/media",
            data={"messaging_product": "whatsapp"},
            files={"file": ("receipt.png", receipt, "image/png")},
        )
        assert uploaded.status_code == 200, uploaded.text
        media_id = uploaded.json()["id"]

        def header(kind: str, value: dict[str, Any]) -> dict[str, Any]:
            return {"type": "header", "parameters": [{"type": kind, kind: value}]}

        sends = [
            send_body("receipt_image", [header("image", {"id": media_id}), body_params("A-1")]),
            send_body(
                "invoice_document",
                [
                    header(
                        "document",
                        {"link": f"{links.base}/invoice.pdf", "filename": "invoice-A-2.pdf"},
                    ),
                    body_params("A-2"),
                ],
            ),
            send_body(
                "assembly_video",
                [header("video", {"link": f"{links.base}/assembly.mp4"}), body_params("desk")],
            ),
            send_body(
                "pickup_point",
                [
                    header(
                        "location",
                        {
                            "latitude": 48.8566,
                            "longitude": 2.3522,
                            "name": "Pickup Paris 4",
                            "address": "1 Rue de Rivoli",
                        },
                    ),
                    body_params("A-3"),
                ],
            ),
            send_body(
                "table_booking",
                [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "4", "parameter_name": "party_size"},
                            {"type": "text", "text": "Ann", "parameter_name": "first_name"},
                        ],
                    }
                ],
            ),
            send_body(
                "summer_offer",
                [
                    body_params("Ann"),
                    {
                        "type": "button",
                        "sub_type": "COPY_CODE",
                        "index": 0,
                        "parameters": [{"type": "coupon_code", "coupon_code": "SUMMER25"}],
                    },
                ],
            ),
            send_body(
                "login_code",
                [
                    body_params("482913"),
                    {
                        "type": "button",
                        "sub_type": "url",
                        "index": "0",
                        "parameters": [{"type": "text", "text": "482913"}],
                    },
                ],
            ),
        ]
        for send in sends:
            response = graph.post(f"/v23.0/{made.phone_number_id}/messages", json=send)
            assert response.status_code == 200, (send["template"]["name"], response.text)
        got = {
            m.content["template"]["name"]: m.content["template"]
            for m in await received(customer, len(sends))
        }
        image = got["receipt_image"]["header"]
        assert image["format"] == "IMAGE" and "id" not in image["image"]
        assert await customer.download_attachment(image["image"]["attachment"]) == receipt
        assert got["receipt_image"]["body"]["text"].startswith("Your receipt for order A-1 ")
        document = got["invoice_document"]["header"]["document"]
        assert document["filename"] == "invoice-A-2.pdf"
        assert await customer.download_attachment(document["attachment"]) == PDF
        video = got["assembly_video"]["header"]["video"]
        assert await customer.download_attachment(video["attachment"]) == MP4
        assert got["pickup_point"]["header"] == {
            "format": "LOCATION",
            "location": {
                "latitude": 48.8566,
                "longitude": 2.3522,
                "name": "Pickup Paris 4",
                "address": "1 Rue de Rivoli",
            },
        }
        assert got["table_booking"]["body"]["text"] == (
            "Hello Ann, your table for 4 is booked at our downtown restaurant tonight."
        )
        assert got["summer_offer"]["category"] == "MARKETING"
        assert got["summer_offer"]["buttons"] == [
            {"type": "COPY_CODE", "text": "Copy offer code", "code": "SUMMER25"}
        ]
        login = got["login_code"]
        assert login["category"] == "AUTHENTICATION"
        assert login["body"]["text"] == (
            "482913 is your verification code. For your security, do not share this code."
        )
        assert login["footer"] == {"text": "This code expires in 10 minutes."}
        assert login["buttons"] == [{"type": "OTP", "text": "Copy code", "code": "482913"}]
    finally:
        await customer.close()


def test_language_code_null_names_the_only_language(shop) -> None:
    made, _server, graph = shop
    create_approved(graph, made.waba_id, ORDER_UPDATE)
    send = send_body(
        "order_update",
        [
            {"type": "HEADER", "parameters": [{"type": "text", "text": "A-9"}]},
            body_params("Bo", "$5.00", "today"),
            {
                "type": "button",
                "sub_type": "url",
                "index": 2,
                "parameters": [{"type": "text", "text": "A-9"}],
            },
        ],
    )
    send["template"]["language"] = {"code": None, "policy": "deterministic"}
    response = graph.post(f"/{made.phone_number_id}/messages", json=send)
    assert response.status_code == 200, response.text
    assert response.json()["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER.lstrip("+")}]
    # Once the name exists in two languages, a send must say which.
    portuguese = {
        "type": "BODY",
        "text": "Oi {{1}}, cobramos {{2}} pelo seu pedido, que sai em {{3}}."
        " Responda se algo estiver errado.",
        "example": {"body_text": [["Ana", "R$ 19,99", "5 de agosto"]]},
    }
    components = [portuguese if c["type"] == "BODY" else c for c in ORDER_UPDATE["components"]]
    components = [c for c in components if c["type"] != "FOOTER"]
    create_approved(
        graph, made.waba_id, {**ORDER_UPDATE, "language": "pt_BR", "components": components}
    )
    ambiguous = graph.post(f"/{made.phone_number_id}/messages", json=send)
    assert ambiguous.status_code == 404
    assert ambiguous.json()["error"]["code"] == 132001
    assert "any single language" in ambiguous.json()["error"]["error_data"]["details"]


def test_tidings_listen_prints_a_template_readably(shop, settings, clock, tmp_path) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, ORDER_UPDATE)
    profile = tmp_path / "customer"

    async def register() -> None:
        client = await customer_device(settings, clock, server.url, tmp_path)
        await client.close()

    run_in_thread(register)
    send = send_body(
        "order_update",
        [
            {"type": "header", "parameters": [{"type": "text", "text": "A-7"}]},
            body_params("Cy", "$7.00", "Monday"),
            {
                "type": "button",
                "sub_type": "url",
                "index": 2,
                "parameters": [{"type": "text", "text": "A-7"}],
            },
        ],
    )
    assert graph.post(f"/v23.0/{made.phone_number_id}/messages", json=send).status_code == 200
    app = typer.Typer()
    client_cli.install(app)
    result = CliRunner().invoke(
        app, ["listen", "--profile", str(profile), "--once", "--timeout", "20"]
    )
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[0].endswith(f"{BUSINESS} (device 1): (template order_update, utility)")
    assert lines[1:] == [
        "Order A-7 update",
        "Hi Cy, we charged $7.00 for your order, which ships on Monday. Reply below if"
        " anything looks wrong.",
        "-- Acme Shop customer care",
        "[Looks right] [Change it] [Track -> https://shop.example/track/A-7]"
        " [Call us: +15550100002]",
    ]


async def test_pywa_uploads_a_header_image_and_sends_it(
    shop, settings, clock, links, tmp_path
) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, MEDIA_TEMPLATES[0])  # receipt_image
    create_approved(graph, made.waba_id, MEDIA_TEMPLATES[1])  # invoice_document
    links.files["/invoice.pdf"] = ("application/pdf", PDF)
    receipt = png(b"pywa-uploaded")
    customer = await customer_device(settings, clock, server.url, tmp_path)
    wa = pywa_client(made, server.url)
    try:
        # pywa uploads the bytes through /media, then sends the header with the media id.
        await asyncio.to_thread(
            wa.send_template,
            to=CUSTOMER,
            name="receipt_image",
            language=TemplateLanguage.ENGLISH_US,
            params=[
                HeaderImage.params(image=receipt, mime_type="image/png"),
                BodyText.params("A-5"),
            ],
        )
        # A URL is passed on as a `link`, which the server fetches at delivery.
        await asyncio.to_thread(
            wa.send_template,
            to=CUSTOMER,
            name="invoice_document",
            language=TemplateLanguage.ENGLISH_US,
            params=[
                HeaderDocument.params(document=f"{links.base}/invoice.pdf"),
                BodyText.params("A-6"),
            ],
        )
        got = {
            m.content["template"]["name"]: m.content["template"]
            for m in await received(customer, 2)
        }
        image = got["receipt_image"]["header"]["image"]["attachment"]
        assert await customer.download_attachment(image) == receipt
        document = got["invoice_document"]["header"]["document"]["attachment"]
        assert await customer.download_attachment(document) == PDF
        assert links.hits == ["/invoice.pdf"]
    finally:
        await customer.close()
