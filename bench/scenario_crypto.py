"""Scenario 6, crypto overhead: what the send path pays per recipient device to encrypt, against
raw vodozemac encrypting the same bytes in the same run.

Three layers, each per device: raw `vodozemac.Session.encrypt`; our `SessionManager.encrypt`
(unpickle the session, encrypt, pickle it again); and the SDK's fan-out encryption as a
business's API device runs it (plaintext envelope, session records read from and written to the
sealed profile store in one transaction), here to a customer's primary and companion."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import vodozemac

from bench.harness import Report, customer_phone, setup_customers, stack
from tidings.crypto import DeviceCrypto, PeerSessions, SessionManager
from tidings.sdk import DeviceClient

NAME = "crypto"
TITLE = "encrypt cost per recipient device"
TARGET_RATIO = 1.5
CONTENT = {"type": "text", "text": {"body": "x" * 160, "preview_url": False}}


def per_call_us(action: Any, rounds: int) -> float:
    for _ in range(min(rounds, 50)):
        action()
    began = time.perf_counter()
    for _ in range(rounds):
        action()
    return (time.perf_counter() - began) / rounds * 1e6


def session_pair() -> tuple[DeviceCrypto, DeviceCrypto, str]:
    alice, bob = DeviceCrypto.create(), DeviceCrypto.create()
    return alice, bob, bob.generate_one_time_keys(1)[0].key


async def send_path_us(
    url: str, phone: str, code: str, to: str, folder: Path, rounds: int
) -> tuple[float, int]:
    """Per-device cost of the SDK's fan-out encryption, and how many devices it served."""
    sender = await DeviceClient.register(url, phone, code, folder)
    try:
        targets = await sender.sender._targets(to)
        await sender.sender.ensure_sessions(targets)

        def encrypt() -> None:
            sender.sender._encrypt(
                to, "bench-id", targets, lambda _p, _d: ("message", CONTENT), None
            )

        cost = per_call_us(encrypt, rounds) / len(targets)
        return cost, len(targets)
    finally:
        await sender.close()


def run(store: str, size: str, command: str) -> Report:
    rounds = {"tiny": 20, "quick": 300, "full": 3000}[size]
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
        server = made.start_tidings()
        [customer] = setup_customers(made, server, business, 1, companions=True, receiver=receiver)
        sender_phone = customer_phone(900)
        code = made.invites([sender_phone])[sender_phone]
        path, devices = asyncio.run(
            send_path_us(
                server.url,
                sender_phone,
                code,
                customer["phone"],
                made.store.folder / "sender",
                rounds,
            )
        )
    alice, bob, key = session_pair()
    manager = SessionManager(alice, b"k" * 32)
    peer = PeerSessions()
    manager.start_session(peer, bob.identity_key, key)
    plaintext = b'{"v":1,"id":"bench-id"}' + b"x" * 400  # the size of the send path's plaintext
    managed = per_call_us(lambda: manager.encrypt(peer, plaintext), rounds)
    raw_session = vodozemac.Account().create_outbound_session(
        vodozemac.Curve25519PublicKey.from_base64(bob.identity_key),
        vodozemac.Curve25519PublicKey.from_base64(bob.generate_one_time_keys(1)[0].key),
    )
    raw = per_call_us(lambda: raw_session.encrypt(plaintext), rounds)
    ratio = path / raw
    report = Report(NAME, TITLE, command, store, size)
    report.row("send path, per device (µs)", f"{path:.0f}", f"{raw:.0f} (raw vodozemac)")
    report.row("SessionManager.encrypt (µs)", f"{managed:.0f}", "")
    report.row("ratio to raw vodozemac", f"{ratio:.1f}", "1.0")
    report.row("devices per fan-out; rounds", f"{devices}; {rounds}", "")
    report.target(
        "crypto", f"≤ {TARGET_RATIO}x raw vodozemac", f"{ratio:.1f}x", ratio <= TARGET_RATIO
    )
    report.figures = {
        "send_path_us_per_device": path,
        "session_manager_us": managed,
        "raw_vodozemac_us": raw,
        "ratio": ratio,
    }
    return report
