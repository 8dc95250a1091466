"""Scenario 6, crypto overhead: what the send path pays per recipient device to encrypt, against
raw vodozemac encrypting the same bytes, on sessions in the same state, in the same run.

The sender is an SDK device as a business's API device runs it (verified device lists cached).
It serves `customers` customers with two devices each, a primary and a linked companion. Each
customer's primary first sent it a message, so the sender answers the primary on the inbound
session that message opened (normal Olm messages), and the companion on an outbound session it
starts itself (pre-key messages until the companion answers, which it never does here).

The measured path is the business worker's: `Sender.send_batch` up to the posting
(`prepare_batch`, then `_encrypt_batch`): the verified lists (cached) and sessions checked,
then one profile transaction for a batch of messages to `customers` distinct customers, with
every session read, the plaintext built, encrypted, the ratchets written (a session kept from
the last batch as its steps ahead of its stored pickle, up to 32; otherwise pickled), and the
commit (fsync) before anything could be posted. Like the API devices, the sender keeps no
local history of what it sends (the platform's database is the record), so the step after the
posting (marking history sent) is empty; it is still timed and reported. Per device is the
batch's time over its devices. The raw baseline encrypts the same plaintext once per device of
the batch with `vodozemac.Session.encrypt` on sessions in the same two states (one inbound
session that answers, one fresh outbound session per customer). Rounds alternate path and
baseline, so the machine's load hits both alike; figures are medians of rounds.

The target is judged on this thread's CPU time, which is what encrypting costs the machine;
the wall time beside it adds the commit's fsync, a wait that one batch shares (the price of
the commit-before-send rule, mostly the disk's).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import vodozemac

from bench.harness import Report, customer_phone, run_worker, stack
from tidings.protocol.e2e import Address, Plaintext
from tidings.sdk import DeviceClient
from tidings.sdk.outgoing import OutgoingItem, SameForAll, Target

NAME = "crypto"
TITLE = "encrypt cost per recipient device"
TARGET_RATIO = 1.5
CONTENT = {"type": "text", "text": {"body": "x" * 160, "preview_url": False}}
SIZES = {"tiny": (3, 3), "quick": (50, 20), "full": (100, 60)}  # customers, rounds


def raw_sessions(count: int) -> list[vodozemac.Session]:
    """Per customer, a session answering an inbound pre-key message (normal messages) and a
    fresh outbound one (pre-key messages): the states of the send path's two sessions."""
    ours = vodozemac.Account()
    sessions = []
    for _ in range(count):
        theirs = vodozemac.Account()
        theirs.generate_one_time_keys(1)
        key = next(iter(theirs.one_time_keys.values()))
        opened = theirs.create_outbound_session(ours.curve25519_key, _own_otk(ours))
        first = opened.encrypt(b"hello").to_pre_key()
        assert first is not None
        inbound, _ = ours.create_inbound_session(theirs.curve25519_key, first)
        sessions.append(inbound)
        sessions.append(ours.create_outbound_session(theirs.curve25519_key, key))
    for session in sessions:  # the first message of a chain does a ratchet step; steady state
        session.encrypt(b"warm up")
    return sessions


def _own_otk(account: vodozemac.Account) -> vodozemac.Curve25519PublicKey:
    account.generate_one_time_keys(1)
    key = next(iter(account.one_time_keys.values()))
    account.mark_keys_as_published()
    return key


def plaintext_like_the_path(sender: DeviceClient, to: str) -> bytes:
    return (
        Plaintext(
            id="wamid.bench-0000000000000000",
            ts=sender.now_ms(),
            sender=Address(phone=sender.phone, device_id=sender.device_id),
            recipient=Address(phone=to, device_id=1),
            to=to,
            kind="message",
            content=CONTENT,
        )
        .model_dump_json()
        .encode()
    )


class SendPath:
    """Batches of one message to each customer, encrypted as `Sender.send_batch` does."""

    def __init__(self, sender: DeviceClient, targets: dict[str, list[Target]]) -> None:
        self.sender = sender
        self.targets = targets
        self.sent = 0

    def items(self, phones: list[str]) -> list[OutgoingItem]:
        made = []
        for phone in phones:
            self.sent += 1
            message_id = f"wamid.bench-{self.sent:016d}"
            record = self.sender._outgoing_record(phone, message_id, CONTENT)
            made.append(OutgoingItem(phone, message_id, SameForAll("message", CONTENT), record))
        return made

    async def batch(self, phones: list[str]) -> tuple[int, list[float], list[float]]:
        """Send one batch but for the posting, as `Sender.send_batch` does: how many envelopes
        it made, and the seconds of its three steps (lists and sessions checked; encrypted and
        committed; history marked sent) in wall time, then in this thread's CPU time."""
        sender = self.sender.sender
        items = self.items(phones)
        walls, cpus = [time.perf_counter()], [time.thread_time()]
        # Verified lists are cached and every session exists: no request.
        prepared = await sender.prepare_batch(items, lambda _exc: True)
        if prepared.outcomes:
            raise RuntimeError(f"the send path refused: {prepared.outcomes}")
        walls.append(time.perf_counter())
        cpus.append(time.thread_time())
        envelopes, failed, written = sender._encrypt_batch(items, prepared.ready)
        if failed:
            raise RuntimeError(f"the send path refused: {failed}")
        walls.append(time.perf_counter())
        cpus.append(time.thread_time())
        sender._mark_sent([item.record for item in items if item.record is not None], written)
        walls.append(time.perf_counter())
        cpus.append(time.thread_time())
        made = sum(len(found) for found in envelopes.values())
        return made, _steps(walls), _steps(cpus)


def _sessions_ahead(sender: DeviceClient) -> int:
    """The sessions stored as steps ahead of their pickle (see `tidings.sdk.store`)."""
    return int(sender.store._db.execute("SELECT count(*) FROM ratchet_steps").fetchone()[0])


def _steps(marks: list[float]) -> list[float]:
    return [after - before for before, after in itertools.pairwise(marks)]


async def register(url: str, phone: str, code: str, folder: Path) -> None:
    sender = await DeviceClient.register(url, phone, code, folder)
    await sender.close()


async def prepare(folder: Path, customers: list[str]) -> Any:
    sender = await DeviceClient.open(folder)
    sender.cache_device_lists = True  # as the business platform's API devices do
    sender.keep_history = False  # likewise: the platform's database is their record
    heard: set[str] = set()
    for _ in range(100):
        for event in await sender.sync():
            heard.add(getattr(event, "sender", ""))
        if heard >= set(customers):
            break
    else:
        raise RuntimeError("the customers' first messages did not all arrive")
    targets = {}
    for customer in customers:
        found = await sender.sender._targets(customer)
        await sender.sender.ensure_sessions(found)
        targets[customer] = found
    return sender, targets


async def measure(
    sender: DeviceClient, targets: dict[str, list[Target]], rounds: int
) -> dict[str, Any]:
    phones = list(targets)
    path = SendPath(sender, targets)
    sessions = raw_sessions(len(phones))
    plaintext = plaintext_like_the_path(sender, phones[0])

    def raw() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for session in sessions:
            session.encrypt(plaintext)
        count = len(sessions)
        return (time.perf_counter() - wall) / count, (time.thread_time() - cpu) / count

    def pickles() -> float:
        began = time.thread_time()
        for session in sessions:
            session.pickle(b"k" * 32)
        return (time.thread_time() - began) / len(sessions)

    await path.batch(phones)  # first messages of the chains (ratchet steps), warm caches
    raw()
    walls: list[list[float]] = []  # per round: the three steps, per device
    cpus: list[list[float]] = []
    raw_walls: list[float] = []
    raw_cpus: list[float] = []
    pickled: list[float] = []
    single_walls: list[float] = []
    single_cpus: list[float] = []
    commits = sender.store.commits
    repickling: list[float] = []  # the rounds that pickled sessions again, CPU per device
    for n in range(rounds):
        made, wall, cpu = await path.batch(phones)
        walls.append([step / made for step in wall])
        cpus.append([step / made for step in cpu])
        if _sessions_ahead(sender) < made:  # a session written as a pickle has no steps row
            repickling.append(sum(cpus[-1][:2]))
        raw_wall, raw_cpu = raw()
        raw_walls.append(raw_wall)
        raw_cpus.append(raw_cpu)
        pickled.append(pickles())
        made, wall, cpu = await path.batch([phones[n % len(phones)]])
        single_walls.append(sum(wall[:2]) / made)
        single_cpus.append(sum(cpu[:2]) / made)
    commits_per_round = (sender.store.commits - commits) / rounds

    def us(values: list[float]) -> float:
        return statistics.median(values) * 1e6

    return {
        # The target: everything before the posting (lists and sessions checked, encrypted,
        # ratchets written, committed), in CPU time.
        "cpu": us([sum(s[:2]) for s in cpus]),
        "wall": us([sum(s[:2]) for s in walls]),
        "raw_cpu": us(raw_cpus),
        "raw_wall": us(raw_walls),
        "check_cpu": us([s[0] for s in cpus]),
        "encrypt_cpu": us([s[1] for s in cpus]),
        "mark_sent_cpu": us([s[2] for s in cpus]),
        "mark_sent_wall": us([s[2] for s in walls]),
        "single_cpu": us(single_cpus),
        "single_wall": us(single_walls),
        "pickle_cpu": us(pickled),
        "repickling_rounds": len(repickling),
        "repickling_cpu": us(repickling) if repickling else 0.0,
        "devices": sum(len(found) for found in targets.values()),
        "customers": len(phones),
        "commits_per_round": commits_per_round,
        "plaintext_bytes": len(plaintext),
    }


async def send_path(folder: Path, customers: list[str], rounds: int) -> dict[str, Any]:
    sender, targets = await prepare(folder, customers)
    try:
        return await measure(sender, targets, rounds)
    finally:
        await sender.close()


def run(store: str, size: str, command: str) -> Report:
    count, rounds = SIZES[size]
    with stack(store) as made:
        server = made.start_tidings()
        sender_phone = customer_phone(900_000)
        phones = [customer_phone(n) for n in range(count)]
        codes = made.invites([sender_phone, *phones])
        sender_code = codes.pop(sender_phone)
        folder = made.store.folder
        # The sender exists first: each customer's primary then writes to it.
        asyncio.run(register(server.url, sender_phone, sender_code, folder / "sender"))
        result = run_worker(
            "devices",
            {
                "mode": "setup",
                "server": server.url,
                "codes": codes,
                "companions": True,
                "business": sender_phone,  # each customer's primary writes to the sender first
                "profiles": str(folder / "profiles"),
            },
        )
        customers = [c["phone"] for c in result["customers"]]
        figures = asyncio.run(send_path(folder / "sender", customers, rounds))
    ratio = figures["cpu"] / figures["raw_cpu"]
    wall_ratio = figures["wall"] / figures["raw_wall"]
    report = Report(NAME, TITLE, command, store, size)
    batch = figures["customers"]
    raw_cpu = f"{figures['raw_cpu']:.1f} (raw vodozemac)"
    report.row(
        f"send path, batches of {batch} messages, per device, CPU (µs)",
        f"{figures['cpu']:.1f}",
        raw_cpu,
    )
    report.row("ratio to raw vodozemac, CPU", f"{ratio:.2f}", "1.00")
    report.row("  lists and sessions checked (µs CPU)", f"{figures['check_cpu']:.1f}", "")
    report.row(
        "  encrypted, ratchets written, committed (µs CPU)",
        f"{figures['encrypt_cpu']:.1f}",
        "",
    )
    report.row(
        "  Session.pickle alone (paid per device once every 33 batches), µs CPU",
        f"{figures['pickle_cpu']:.1f}",
        "",
    )
    report.row(
        "  rounds that pickled sessions again: how many; their CPU per device (µs)",
        f"{figures['repickling_rounds']}; {figures['repickling_cpu']:.1f}",
        "",
    )
    report.row(
        f"send path, batches of {batch}, per device, wall incl. the commit's fsync (µs)",
        f"{figures['wall']:.1f}",
        f"{figures['raw_wall']:.1f} (raw vodozemac)",
    )
    report.row("ratio to raw vodozemac, wall", f"{wall_ratio:.2f}", "1.00")
    report.row(
        "send path, one message per transaction, per device, CPU; wall (µs)",
        f"{figures['single_cpu']:.1f}; {figures['single_wall']:.1f}",
        raw_cpu,
    )
    report.row(
        "after posting: history marked sent (none kept), per device, CPU; wall (µs)",
        f"{figures['mark_sent_cpu']:.1f}; {figures['mark_sent_wall']:.1f}",
        "",
    )
    report.row("devices per batch (customers x 2); rounds", f"{figures['devices']}; {rounds}", "")
    report.target(
        "crypto",
        f"≤ {TARGET_RATIO}x raw vodozemac (CPU per device, batched)",
        f"{ratio:.2f}x",
        ratio <= TARGET_RATIO,
    )
    report.figures = {
        **figures,
        "ratio": ratio,
        "wall_ratio": wall_ratio,
        "send_path_us_per_device": figures["cpu"],
        "raw_vodozemac_us": figures["raw_cpu"],
    }
    return report
