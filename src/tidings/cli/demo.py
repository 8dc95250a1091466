"""`tidings serve --demo`: a demo business running beside the server.

At start-up the demo shop (demo/shop/bot.py in a source checkout) is provisioned once — a
business with a phone number, an access token and an app secret, remembered in the data
folder — and started in a thread on a loopback port, and the number's webhooks are pointed at
it. From then on the bot talks to the server only through the public Business API and
signed webhooks, like any integration. Invite codes for two customers are printed, with the
`tidings chat` line to run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn

from tidings.business.service import Provisioned
from tidings.cli.business import _create, _webhook
from tidings.config import Settings

SHOP_PHONE = "+15550109000"
SHOP_NAME = "Acme Demo Shop"
CREDENTIALS_FILE = "demo-shop.json"
BOT_FILE = Path(__file__).resolve().parents[3] / "demo" / "shop" / "bot.py"


@dataclass
class RunningShop:
    phone: str
    webhook_url: str
    bot: Any  # demo.shop.bot.ShopBot
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def load_bot_module(path: Path = BOT_FILE) -> ModuleType | None:
    """The demo bot lives outside the package (it is an example to copy); None if this
    installation has no source checkout beside it."""
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("tidings_demo_shop", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


async def provision(settings: Settings) -> tuple[Provisioned, str]:
    """The demo business's credentials, created on first use; and its webhook verify token."""
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        saved = json.loads(path.read_text())
        return Provisioned(**saved["business"]), str(saved["verify_token"])
    made = await _create(settings, SHOP_NAME, SHOP_PHONE)
    verify_token = secrets.token_urlsafe(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"business": made.__dict__, "verify_token": verify_token}, handle)
    return made, verify_token


async def start_shop(settings: Settings, api_url: str) -> RunningShop | None:
    """Provision the shop, serve its bot on a loopback port, point the webhooks at it."""
    module = load_bot_module()
    if module is None:
        return None
    made, verify_token = await provision(settings)
    config = module.ShopConfig(
        api=api_url,
        phone_number_id=made.phone_number_id,
        waba_id=made.waba_id,
        token=made.access_token,
        app_secret=made.app_secret,
        verify_token=verify_token,
    )
    bot = module.ShopBot(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # listening before the handshake below, so it queues until served
    server = uvicorn.Server(
        uvicorn.Config(module.create_app(bot), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="demo-shop"
    )
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhook"
    await _webhook(settings, made.phone_number_id, url, verify_token)
    return RunningShop(made.phone, url, bot, server, thread)
