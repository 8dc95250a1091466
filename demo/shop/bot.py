"""Acme Demo Shop: a small shop bot on the public Business API, a starting point for your own.

It uses nothing but what any WhatsApp Cloud API integration uses: HTTPS calls to
`/{version}/{phone_number_id}/messages` and `/{version}/{waba_id}/message_templates` with a
bearer token, and a webhook endpoint that answers Meta's GET handshake and checks each POST's
`X-Hub-Signature-256` against the app secret. Point it at Meta's Graph API and it would work
there too.

What it does:
  - any text (say "hi")       → a greeting with three reply buttons
  - "Track my order"          → a list of the customer's orders (a menu with sections)
  - an order from the list    → the `order_update` template (a utility template with a header,
                                body, footer and buttons), or a plain message if templates are
                                not available on the server
  - "Talk to a person"        → a text saying a person will answer
  - "Today's offers"          → the `todays_offers` marketing template (or a CTA URL), unless
                                the customer stopped promotions
  - STOP / START, or the platform's `user_preferences` webhook → honoured opt-out
  - a location                → the nearest pickup point

Run it on its own (the server must be running and the business provisioned):

    python demo/shop/bot.py --api http://127.0.0.1:8080 --phone-number-id ID --waba-id W \\
        --token TOKEN --app-secret SECRET --verify-token any-string --port 8090

`tidings serve --demo` provisions the business and starts this bot beside the server.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("demo.shop")

API_VERSION = "v23.0"
SHOP_NAME = "Acme Demo Shop"
STOP_WORDS = {"stop", "unsubscribe", "stop promotions"}
START_WORDS = {"start", "subscribe"}

ORDERS = {
    "order-1001": ("#1001 Teapot", "Shipped yesterday", "on its way"),
    "order-1002": ("#1002 Cup set", "Packed, ships today", "packed"),
    "order-0998": ("#0998 Kettle", "Delivered on Monday", "delivered"),
}

GREETING_BUTTONS = [
    ("track", "Track my order"),
    ("agent", "Talk to a person"),
    ("offers", "Today's offers"),
]

TEMPLATES = [
    {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order update"},
            {
                "type": "BODY",
                "text": "Your order {{1}} is {{2}}. We will message you when it arrives.",
                "example": {"body_text": [["#1001", "on its way"]]},
            },
            {"type": "FOOTER", "text": SHOP_NAME},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Talk to a person"},
                    {"type": "URL", "text": "Track parcel", "url": "https://shop.example/track"},
                ],
            },
        ],
    },
    {
        "name": "todays_offers",
        "language": "en_US",
        "category": "MARKETING",
        "components": [
            {
                "type": "BODY",
                "text": "Today only: {{1}} off every teapot. Use code {{2}} at checkout.",
                "example": {"body_text": [["20%", "TEA20"]]},
            },
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "URL", "text": "Shop now", "url": "https://shop.example"}],
            },
        ],
    },
]


@dataclass
class ShopConfig:
    api: str  # e.g. http://127.0.0.1:8080 (or https://graph.facebook.com)
    phone_number_id: str
    waba_id: str
    token: str
    app_secret: str
    verify_token: str


@dataclass
class ShopBot:
    config: ShopConfig
    transport: httpx.AsyncBaseTransport | None = None
    opted_out: set[str] = field(default_factory=set)
    templates_ready: bool | None = None  # None: not tried yet
    sent: list[dict[str, Any]] = field(default_factory=list)  # what it sent, for the curious

    # -- the Cloud API ----------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.config.api,
            headers={"authorization": f"Bearer {self.config.token}"},
            transport=self.transport,
            timeout=30,
        )

    async def send(self, to: str, message: dict[str, Any]) -> dict[str, Any]:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        body.update(message)
        async with self._http() as http:
            response = await http.post(
                f"/{API_VERSION}/{self.config.phone_number_id}/messages", json=body
            )
        result: dict[str, Any] = response.json()
        if response.status_code != 200:
            log.warning("send to %s failed: %s", to, result.get("error", {}).get("message"))
        self.sent.append({"to": to, "message": message, "status": response.status_code})
        return result

    async def mark_read(self, message_id: str) -> None:
        async with self._http() as http:
            await http.post(
                f"/{API_VERSION}/{self.config.phone_number_id}/messages",
                json={"messaging_product": "whatsapp", "status": "read", "message_id": message_id},
            )

    async def ensure_templates(self) -> bool:
        """Submit the shop's templates once (an existing one is fine); False if the server has
        no template API."""
        if self.templates_ready is not None:
            return self.templates_ready
        ready = True
        async with self._http() as http:
            for template in TEMPLATES:
                response = await http.post(
                    f"/{API_VERSION}/{self.config.waba_id}/message_templates", json=template
                )
                status = response.json().get("status") if response.status_code == 200 else None
                exists = response.status_code == 400 and "already" in response.text.lower()
                if status not in ("APPROVED", None) or (status is None and not exists):
                    ready = False
        self.templates_ready = ready
        return ready

    # -- replies ----------------------------------------------------------------------------

    async def greet(self, to: str) -> None:
        buttons = [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in GREETING_BUTTONS]
        await self.send(
            to,
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "header": {"type": "text", "text": SHOP_NAME},
                    "body": {"text": "Hi! 👋 How can we help you today?"},
                    "footer": {"text": "Tap a button, or just type"},
                    "action": {"buttons": buttons},
                },
            },
        )

    async def list_orders(self, to: str) -> None:
        def row(order_id: str) -> dict[str, str]:
            title, description, _ = ORDERS[order_id]
            return {"id": order_id, "title": title, "description": description}

        await self.send(
            to,
            {
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": {"text": "Which order would you like to track?"},
                    "action": {
                        "button": "Your orders",
                        "sections": [
                            {"title": "Open", "rows": [row("order-1001"), row("order-1002")]},
                            {"title": "Delivered", "rows": [row("order-0998")]},
                        ],
                    },
                },
            },
        )

    async def order_update(self, to: str, order_id: str) -> None:
        title, _, state = ORDERS.get(order_id, ("your order", "", "being looked up"))
        number = title.split()[0]
        if await self.ensure_templates():
            result = await self.send(
                to,
                {
                    "type": "template",
                    "template": {
                        "name": "order_update",
                        "language": {"code": "en_US"},
                        "components": [
                            {
                                "type": "body",
                                "parameters": [
                                    {"type": "text", "text": number},
                                    {"type": "text", "text": state},
                                ],
                            }
                        ],
                    },
                },
            )
            if "messages" in result:
                return
        await self.send(
            to,
            {
                "type": "interactive",
                "interactive": {
                    "type": "cta_url",
                    "header": {"type": "text", "text": "Order update"},
                    "body": {"text": f"Your order {number} is {state}."},
                    "footer": {"text": SHOP_NAME},
                    "action": {
                        "name": "cta_url",
                        "parameters": {
                            "display_text": "Track parcel",
                            "url": "https://shop.example/track",
                        },
                    },
                },
            },
        )

    async def offers(self, to: str) -> None:
        if to in self.opted_out:
            await self.text(to, "You asked us not to send offers. Reply START to get them again.")
            return
        if await self.ensure_templates():
            result = await self.send(
                to,
                {
                    "type": "template",
                    "template": {
                        "name": "todays_offers",
                        "language": {"code": "en_US"},
                        "components": [
                            {
                                "type": "body",
                                "parameters": [
                                    {"type": "text", "text": "20%"},
                                    {"type": "text", "text": "TEA20"},
                                ],
                            }
                        ],
                    },
                },
            )
            if "messages" in result:
                return
        await self.text(
            to, "Today only: 20% off every teapot with code TEA20. https://shop.example"
        )

    async def text(self, to: str, body: str) -> None:
        await self.send(to, {"type": "text", "text": {"body": body, "preview_url": False}})

    # -- webhooks ---------------------------------------------------------------------------

    async def handle(self, payload: dict[str, Any]) -> None:
        for entry in payload.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                for preference in value.get("user_preferences", []):
                    self.preference(preference)
                for message in value.get("messages", []):
                    try:
                        await self.on_message(message)
                    except httpx.HTTPError as exc:
                        log.warning("could not answer %s: %s", message.get("id"), exc)

    def preference(self, preference: dict[str, Any]) -> None:
        customer = "+" + str(preference.get("wa_id", "")).lstrip("+")
        if preference.get("value") == "stop":
            self.opted_out.add(customer)
        elif preference.get("value") == "resume":
            self.opted_out.discard(customer)

    async def on_message(self, message: dict[str, Any]) -> None:
        customer = "+" + str(message["from"]).lstrip("+")
        kind = message.get("type")
        await self.mark_read(str(message["id"]))
        if kind == "text":
            words = message["text"]["body"].strip().lower()
            if words in STOP_WORDS:
                self.opted_out.add(customer)
                await self.text(customer, "Done: no more offers from us. Reply START to undo.")
            elif words in START_WORDS:
                self.opted_out.discard(customer)
                await self.text(customer, "Welcome back! You will hear about our offers again.")
            else:
                await self.greet(customer)
        elif kind == "interactive":
            reply = message["interactive"]
            chosen = reply.get("button_reply") or reply.get("list_reply") or {}
            await self.choose(customer, str(chosen.get("id", "")))
        elif kind == "button":  # a template's quick reply
            await self.choose(customer, "agent")
        elif kind == "location":
            await self.text(customer, "Thanks! Your nearest pickup point is Acme Depot, Main St 1.")

    async def choose(self, customer: str, choice: str) -> None:
        if choice == "track":
            await self.list_orders(customer)
        elif choice == "agent":
            await self.text(customer, "A person from our team will answer here shortly.")
        elif choice == "offers":
            await self.offers(customer)
        elif choice in ORDERS:
            await self.order_update(customer, choice)
        else:
            await self.greet(customer)


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


def create_app(bot: ShopBot) -> Starlette:
    async def verify(request: Request) -> Response:
        params = request.query_params
        if (
            params.get("hub.mode") == "subscribe"
            and params.get("hub.verify_token") == bot.config.verify_token
        ):
            return PlainTextResponse(params.get("hub.challenge", ""))
        return PlainTextResponse("forbidden", status_code=403)

    async def receive(request: Request) -> Response:
        body = await request.body()
        if not signature_ok(
            bot.config.app_secret, body, request.headers.get("x-hub-signature-256")
        ):
            return PlainTextResponse("bad signature", status_code=401)
        # Answer at once and work afterwards: webhook senders time out slow endpoints.
        return Response(status_code=200, background=BackgroundTask(bot.handle, json.loads(body)))

    return Starlette(
        routes=[
            Route("/webhook", verify, methods=["GET"]),
            Route("/webhook", receive, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("api", "phone-number-id", "waba-id", "token", "app-secret", "verify-token"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    config = ShopConfig(
        api=args.api,
        phone_number_id=args.phone_number_id,
        waba_id=args.waba_id,
        token=args.token,
        app_secret=args.app_secret,
        verify_token=args.verify_token,
    )
    logging.basicConfig(level="INFO")
    uvicorn.run(create_app(ShopBot(config)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
