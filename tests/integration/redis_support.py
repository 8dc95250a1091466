"""The Redis service the scale-out tests share (TIDINGS_TEST_REDIS to use another one).

Other tests of the same run (on the other xdist worker) and other runs on the machine use the
same server at the same time, so a test touches only what is its own: topics and key prefixes
with a random part, and, when it cuts a connection off, only the connections it opened.
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis

REDIS = os.environ.get("TIDINGS_TEST_REDIS", "redis://127.0.0.1:6379/0")


def named(url: str, client_name: str) -> str:
    """`url` with a client name: every connection opened from it is named so in CLIENT LIST."""
    return f"{url}{'&' if '?' in url else '?'}client_name={client_name}"


async def cut_off(client_name: str) -> int:
    """Have Redis drop the pub/sub connections with that client name, as a restart or a network
    cut would; returns how many. (Killing every pub/sub client would cut off everyone else's
    subscriptions on the server too.)"""
    admin = aioredis.from_url(REDIS)
    try:
        clients = await admin.client_list(_type="pubsub")
        ids = [str(c["id"]) for c in clients if c.get("name") == client_name]
        for client_id in ids:
            await admin.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        await admin.aclose()
