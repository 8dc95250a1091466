"""CPU per message filed by the network core's batch send, in one process.

A sender with one device (as a business's API device is) posts batches of 100 messages, each to
one customer's two devices (a primary and a linked companion), the shape of a delivery batch.
The runtime is built in this process, accounts are registered and companions linked through
the HTTP API (httpx's ASGI transport, no sockets, no workers), and then each batch is timed:

- `service`: `MailboxService.send_batch` called directly (checks, de-duplication, positions,
  envelope rows, the commit and the doorbells);
- `request`: the same batch posted to `POST /v1/messages/batch` (adds authentication, the wire
  models and the response).

    PYTHONPATH=src .venv/bin/python -m bench.core_filing [--store postgresql] [--customers 100]

Figures are CPU time of this process (`time.process_time`): steadier than wall time on a
shared machine. Statements counts every cursor execution (an executemany counts once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from bench.harness import BENCH_SETTINGS, customer_phone, scratch_database
from tidings.app import create_app
from tidings.config import load_settings
from tidings.crypto import AccountKey, DeviceCrypto, DeviceEntry, DeviceList, sign_device_list
from tidings.crypto.encoding import b64
from tidings.protocol import api
from tidings.runtime import Runtime, build_runtime

SENDER = "+15550109999"
BATCH = 100
BODY = b64(os.urandom(160))  # an Olm message of a short text, give or take


def _keys(crypto: DeviceCrypto, name: str) -> dict[str, object]:
    return {
        "name": name,
        "identity_key": crypto.identity_key,
        "signing_key": crypto.signing_key,
        "one_time_keys": [k.model_dump() for k in crypto.generate_one_time_keys(1)],
        "fallback_key": crypto.generate_fallback_key().model_dump(),
    }


def _entry(crypto: DeviceCrypto, device_id: int) -> DeviceEntry:
    return DeviceEntry(device_id, crypto.identity_key, crypto.signing_key)


def _signed(phone: str, key: AccountKey, entries: list[DeviceEntry], version: int) -> Any:
    listing = DeviceList(phone, version, int(time.time() * 1000), tuple(entries))
    return sign_device_list(listing, key).model_dump()


async def register(
    runtime: Runtime, client: httpx.AsyncClient, phone: str, companion: bool
) -> tuple[str, list[int]]:
    """An account with a primary (and a linked companion): its token and device ids."""
    async with runtime.database.unit_of_work() as uow:
        code = (await runtime.accounts.invite(uow, phone)).code
    key, crypto = AccountKey.generate(), DeviceCrypto.create()
    made = await client.post(
        "/v1/accounts",
        json={
            "phone": phone,
            "code": code,
            "account_key": key.public_b64,
            "device": _keys(crypto, "primary"),
        },
    )
    assert made.status_code == 201, made.text
    token, device_id = made.json()["device_token"], made.json()["device_id"]
    headers = {"Authorization": f"Bearer {token}"}
    entries = [_entry(crypto, device_id)]
    listed = await client.put(
        "/v1/devices/list", json={"signed_list": _signed(phone, key, entries, 1)}, headers=headers
    )
    assert listed.status_code == 200, listed.text
    if not companion:
        return token, [device_id]
    link = (await client.post("/v1/links", headers=headers)).json()
    other = DeviceCrypto.create()
    joined = await client.post(
        f"/v1/links/{link['link_id']}/join",
        json={"device": _keys(other, "companion"), "proof": b64(b"p" * 32)},
    )
    assert joined.status_code == 201, joined.text
    entries.append(_entry(other, joined.json()["device_id"]))
    approved = await client.post(
        f"/v1/links/{link['link_id']}/approve",
        json={
            "signed_list": _signed(phone, key, entries, 2),
            "account_key": key.public_b64,
            "proof": b64(b"q" * 32),
        },
        headers=headers,
    )
    assert approved.status_code == 200, approved.text
    return token, [e.device_id for e in entries]


def batch(customers: list[tuple[str, list[int]]], round_: int) -> list[api.SendRequest]:
    sends = []
    for n in range(BATCH):
        phone, devices = customers[(round_ * BATCH + n) % len(customers)]
        sends.append(
            api.SendRequest(
                message_id=f"r{round_}-m{n}",
                to=phone,
                envelopes=[
                    api.OutgoingEnvelope(phone=phone, device_id=d, type=1, body=BODY)
                    for d in devices
                ],
            )
        )
    return sends


async def measure(url: str, data: Path, customers_n: int, rounds: int) -> dict[str, float]:
    settings = load_settings(data, database={"url": url})
    runtime = build_runtime(settings)
    statements = [0]

    def count(*_: object) -> None:
        statements[0] += 1

    try:
        app = create_app(runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            token, _ = await register(runtime, client, SENDER, companion=False)
            customers = []
            for n in range(customers_n):
                phone = customer_phone(n)
                customers.append((phone, (await register(runtime, client, phone, True))[1]))
            ctx = await runtime.devices.authenticate(token)
            headers = {"Authorization": f"Bearer {token}"}
            event.listen(runtime.database.statement_engines[0], "before_cursor_execute", count)
            figures: dict[str, float] = {}
            for name in ("service", "request"):
                offset = 0 if name == "service" else 10_000

                async def one(round_: int, name: str = name, offset: int = offset) -> None:
                    sends = batch(customers, offset + round_)
                    if name == "service":
                        results = await runtime.mailbox.send_batch(ctx, sends)
                        assert all(isinstance(r, api.SendResponse) for r in results), results
                        return
                    body = api.SendBatchRequest(sends=sends).model_dump(mode="json")
                    answer = await client.post("/v1/messages/batch", json=body, headers=headers)
                    assert answer.status_code == 200, answer.text
                    assert all(r["sent"] for r in answer.json()["results"]), answer.text

                for round_ in range(3):  # warm-up: caches, compiled statements
                    await one(round_)
                # The batches are built outside the timed part for the service figure.
                statements[0] = 0
                cpu = 0.0
                for round_ in range(3, 3 + rounds):
                    start = time.process_time()
                    await one(round_)
                    cpu += time.process_time() - start
                figures[f"{name}_us_per_message"] = cpu / (rounds * BATCH) * 1e6
                figures[f"{name}_statements_per_batch"] = statements[0] / rounds
            return figures
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--customers", type=int, default=100, help="distinct recipients")
    parser.add_argument("--rounds", type=int, default=30, help="timed batches of 100 messages")
    args = parser.parse_args()
    os.environ.update(BENCH_SETTINGS)
    with scratch_database(args.store, "core-filing") as (data, url):
        figures = asyncio.run(measure(url, data, args.customers, args.rounds))
    print(
        f"{args.store}, batches of {BATCH} messages x 2 devices to {args.customers} customers, "
        f"{args.rounds} batches: "
        f"service {figures['service_us_per_message']:,.0f} µs CPU/message "
        f"({figures['service_statements_per_batch']:.0f} statements/batch); "
        f"request {figures['request_us_per_message']:,.0f} µs CPU/message "
        f"({figures['request_statements_per_batch']:.0f} statements/batch)"
    )


if __name__ == "__main__":
    main()
