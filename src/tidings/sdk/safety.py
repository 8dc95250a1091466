"""Safety numbers: compare them in person (or over a call) to know no one sits in between.

Each account contributes 30 digits derived from its phone number and account key (the key
that signs its device list, so one check covers every device it adds later); the two halves
are ordered so that both sides see the same 60 digits. Iterated SHA-512, as Signal's
fingerprints do, makes finding a key with chosen digits costly.
"""

from __future__ import annotations

import hashlib

from tidings.crypto import unb64
from tidings.sdk import errors
from tidings.sdk.errors import SdkError
from tidings.sdk.store import ProfileStore

ITERATIONS = 5200
VERSION = b"\x00\x01"


def _half(phone: str, account_key_b64: str) -> str:
    key = unb64(account_key_b64)
    digest = VERSION + key + phone.encode()
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + key).digest()
    # Six chunks of five bytes, each read as a number mod 100000: 30 digits.
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


def safety_number(phone_a: str, key_a: str, phone_b: str, key_b: str) -> str:
    """60 digits, the same whichever side computes it."""
    halves = sorted([(phone_a, _half(phone_a, key_a)), (phone_b, _half(phone_b, key_b))])
    return "".join(half for _, half in halves)


def grouped(number: str) -> str:
    """Twelve groups of five digits in three lines of four, as shown to people."""
    groups = [number[i : i + 5] for i in range(0, len(number), 5)]
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


def safety_number_with(store: ProfileStore, me: str, peer: str) -> str:
    """The safety number between this account and `peer`, from the keys this device pinned."""
    with store.transaction() as state:
        mine, theirs = state.trust(me), state.trust(peer)
    if mine is None or theirs is None:
        raise SdkError(
            errors.UNTRUSTED_DEVICE_LIST,
            f"no verified device list for {peer if theirs is None else me} yet: exchange a"
            " message first",
        )
    return safety_number(me, mine.account_key, peer, theirs.account_key)
