"""The API devices: each business phone number is a device on the network.

The platform drives each one with the same device SDK a customer uses, so it speaks the core's
public protocol only. In one process the SDK's requests go straight into the core's ASGI app
(no socket); run apart, the transport is plain HTTP. Each device's keys and sessions live in a
sealed profile under the data folder. One process owns a device at a time (e2e.md §12: its Olm
account mutates on every new session), which is why the delivery worker runs per phone number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from tidings.sdk.client import DeviceClient
from tidings.sdk.http import CoreRoute

# The SDK stores a server URL in each profile; in-process requests never resolve it.
INTERNAL_URL = "http://tidings.internal"

TransportFactory = Callable[[], httpx.AsyncBaseTransport]


class ApiDeviceHost:
    def __init__(
        self,
        folder: Path,
        transport: TransportFactory | None = None,
        core_route: CoreRoute | None = None,
    ) -> None:
        self._folder = folder
        self._transport_factory = transport
        # In the core's own process, the delivery calls go to its services directly.
        self._core_route = core_route
        self._clients: dict[str, DeviceClient] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def set_transport(self, factory: TransportFactory) -> None:
        """How API devices reach the core: the app's ASGI entry in-process, or HTTP."""
        self._transport_factory = factory

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self._transport_factory is None:
            raise RuntimeError("API devices have no route to the network core yet")
        return self._transport_factory()

    def profile(self, phone_number_id: str) -> Path:
        return self._folder / phone_number_id

    def lock(self, phone_number_id: str) -> asyncio.Lock:
        """Serialises everything one API device does (its sessions are one state)."""
        return self._locks.setdefault(phone_number_id, asyncio.Lock())

    async def register(self, phone_number_id: str, phone: str, code: str, name: str) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        client = await DeviceClient.register(
            INTERNAL_URL,
            phone,
            code,
            self.profile(phone_number_id),
            name=f"{name} (API)",
            transport=self._transport(),
        )
        client.enable_journal()
        self._configure(client)
        self._clients[phone_number_id] = client

    async def client(self, phone_number_id: str) -> DeviceClient:
        client = self._clients.get(phone_number_id)
        if client is None:
            client = await DeviceClient.open(
                self.profile(phone_number_id), transport=self._transport()
            )
            self._configure(client)
            self._clients[phone_number_id] = client
        return client

    def _configure(self, client: DeviceClient) -> None:
        # It sends all day: verified lists are kept until the core refuses one as stale.
        client.cache_device_lists = True
        # The platform's database is the record of what the business sends.
        client.keep_history = False
        client.api.core_route = self._core_route

    def is_registered(self, phone_number_id: str) -> bool:
        return (self.profile(phone_number_id) / "state.db").exists()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
