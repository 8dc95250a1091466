"""The per-phone-number worker: delivers accepted messages and drains the API device.

It wakes on two doorbells (the API device's mailbox, rung by the core after commit, and the
phone's outbound topic, rung after a send is accepted) and also every `poll_seconds`, which
bounds the delay if a doorbell is lost (the bus is never the only record of anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from tidings.bus.base import Bus
from tidings.business.api_devices import ApiDeviceHost
from tidings.business.messaging import BusinessMessaging
from tidings.business.service import BusinessService, PhoneInfo
from tidings.devices.service import DeviceService
from tidings.mailbox.service import mailbox_topic

log = logging.getLogger(__name__)


def outbound_topic(phone_pk: int) -> str:
    return f"business.outbound.{phone_pk}"


class BusinessWorker:
    def __init__(
        self,
        *,
        bus: Bus,
        businesses: BusinessService,
        messaging: BusinessMessaging,
        api_devices: ApiDeviceHost,
        core_devices: DeviceService,
        poll_seconds: float = 30.0,
        housekeeping: Sequence[Callable[[], Awaitable[int]]] = (),
    ) -> None:
        self._bus = bus
        self._businesses = businesses
        self._messaging = messaging
        self._api_devices = api_devices
        self._core_devices = core_devices
        self._poll = poll_seconds
        # Periodic chores (expired media and attachments), run once per pass.
        self._housekeeping = tuple(housekeeping)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Start a loop per phone number, and pick up numbers created later."""
        try:
            while not stop.is_set():
                for phone in await self._businesses.all_phones():
                    task = self._tasks.get(phone.phone_number_id)
                    if (task is None or task.done()) and self._api_devices.is_registered(
                        phone.phone_number_id
                    ):
                        self._tasks[phone.phone_number_id] = asyncio.create_task(
                            self._serve(phone, stop)
                        )
                await self._run_housekeeping()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run_housekeeping(self) -> None:
        for chore in self._housekeeping:
            try:
                await chore()
            except Exception:  # the next pass tries again
                log.exception("housekeeping failed")

    async def _serve(self, phone: PhoneInfo, stop: asyncio.Event) -> None:
        client = await self._api_devices.client(phone.phone_number_id)
        ctx = await self._core_devices.authenticate(client.api.token)
        topics = (mailbox_topic(ctx.device_pk), outbound_topic(phone.phone_pk))
        async with self._bus.subscribe(*topics) as doorbell:
            while not stop.is_set():
                try:
                    # Receipts are drained after every batch, so `delivered` and `read` never
                    # wait behind the whole outbound queue; the batch's `sent` statuses are
                    # recorded in the journal's transaction (one writer turn for both).
                    # A pass that found nothing to send after one that did skips its drain:
                    # whatever reached the mailbox since the last drain rang the doorbell,
                    # so the next wake-up drains it (at 20 messages/s a third of the drains
                    # were these, each a mailbox page and a journal read for nothing).
                    first = True
                    while True:
                        taken, statuses = await self._messaging.send_pending(phone)
                        if taken:
                            await _let_pushes_start()
                        if first or taken or statuses:
                            await self._messaging.drain(phone, statuses)
                        first = False
                        if not taken:
                            break
                except Exception:  # keep serving; the next wake-up retries from the database
                    log.exception("business worker for %s failed a pass", phone.phone_number_id)
                await doorbell.get(timeout=self._poll)
                # Every accepted send rings, so a pass finds a ring per message it took still
                # queued: one pass answers them all (an empty pass reads the pending queue, the
                # API device's mailbox and its journal, ~2 ms, so at 200 messages/s the rings
                # left behind by a busy pass had cost more than the pass itself).
                while await doorbell.get(timeout=0) is not None:
                    pass


async def _let_pushes_start() -> None:
    """Give the loop to the pushes a send pass's filing rang before the drain takes it.

    The core rings each mailbox after its commit; the gateway's reader takes the ring in one
    round of the event loop and its push task starts in the next. A drain's first steps read
    the API device's mailbox and its journal without suspending, so without these rounds the
    customers' devices heard of the message only after them (2-3 ms later at 20 messages/s,
    traced)."""
    for _round in range(3):
        await asyncio.sleep(0)
