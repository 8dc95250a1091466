"""One-time keys, fallback keys, signed device lists and linking, at the protocol level."""

from __future__ import annotations

import asyncio
import time

import httpx
from core_helpers import device_keys, error_code, link_companion, publish, register, signed_list

from tidings.crypto import AccountKey, DeviceCrypto, DeviceEntry, DeviceList, sign_device_list
from tidings.crypto.encoding import b64

ALICE, BOB, CAROL = "+15550100001", "+15550100002", "+15550100003"


def test_key_upload_is_idempotent_and_refuses_a_different_key_under_a_known_id(
    server, invite
) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE), otks=0)
        fresh = alice.crypto.generate_one_time_keys(3)
        body = {"one_time_keys": [k.model_dump() for k in fresh]}
        first = client.put("/v1/keys", json=body, headers=alice.headers)
        assert first.json()["one_time_key_count"] == 3
        again = client.put("/v1/keys", json=body, headers=alice.headers)
        assert again.json()["one_time_key_count"] == 3
        alice.crypto.mark_published()
        other = alice.crypto.generate_one_time_keys(1)[0]
        assert other.key != fresh[0].key
        clash = {**other.model_dump(), "key_id": fresh[0].key_id}
        response = client.put("/v1/keys", json={"one_time_keys": [clash]}, headers=alice.headers)
        assert response.status_code in (400, 409)
        assert client.get("/v1/keys", headers=alice.headers).json()["one_time_key_count"] == 3


def test_claims_hand_each_key_out_once_then_fall_back(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE), otks=3)
        bob = register(client, BOB, invite(BOB))
        seen: list[str] = []
        for _ in range(3):
            claimed = client.post(
                "/v1/keys/claim", json={"phone": ALICE}, headers=bob.headers
            ).json()
            key = claimed["devices"][0]["one_time_key"]
            assert key["fallback"] is False
            seen.append(key["key_id"])
        assert len(set(seen)) == 3
        fallback = client.post("/v1/keys/claim", json={"phone": ALICE}, headers=bob.headers).json()
        assert fallback["devices"][0]["one_time_key"]["fallback"] is True
        status = client.get("/v1/keys", headers=alice.headers).json()
        assert status == {
            "one_time_key_count": 0,
            "fallback_key_used": True,
            "has_fallback_key": True,
        }
        # The owner refills and rotates its fallback key: the flag clears.
        refill = alice.crypto.generate_one_time_keys(10)
        rotated = alice.crypto.generate_fallback_key()
        response = client.put(
            "/v1/keys",
            json={
                "one_time_keys": [k.model_dump() for k in refill],
                "fallback_key": rotated.model_dump(),
            },
            headers=alice.headers,
        )
        assert response.json() == {
            "one_time_key_count": 10,
            "fallback_key_used": False,
            "has_fallback_key": True,
        }


async def test_concurrent_claims_never_share_a_key(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        register(client, ALICE, await asyncio.to_thread(invite, ALICE), otks=40)
        claimers = [
            register(client, phone, await asyncio.to_thread(invite, phone))
            for phone in ("+15550100011", "+15550100012", "+15550100013", "+15550100014")
        ]
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def claim(token: str) -> str:
            response = await client.post(
                "/v1/keys/claim",
                json={"phone": ALICE},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            return response.json()["devices"][0]["one_time_key"]["key_id"]

        keys = await asyncio.gather(*(claim(c.token) for c in claimers for _ in range(10)))
    assert len(keys) == 40
    assert len(set(keys)) == 40


def test_key_claims_are_rate_limited(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        register(client, ALICE, invite(ALICE), otks=0)
        bob = register(client, BOB, invite(BOB))
        codes = [
            client.post("/v1/keys/claim", json={"phone": ALICE}, headers=bob.headers).status_code
            for _ in range(125)
        ]
        assert codes.count(429) >= 5
        server.clock.advance(seconds=60)
        assert (
            client.post("/v1/keys/claim", json={"phone": ALICE}, headers=bob.headers).status_code
            == 200
        )


def test_device_lists_must_be_signed_by_the_account_key_and_move_forward(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        entries = [alice.entry()]
        forged = sign_device_list(
            DeviceList(ALICE, 5, int(time.time() * 1000), tuple(entries)), AccountKey.generate()
        ).model_dump()
        response = client.put(
            "/v1/devices/list", json={"signed_list": forged}, headers=alice.headers
        )
        assert (response.status_code, error_code(response)) == (400, "bad_signature")
        rollback = signed_list(alice, entries, alice.list_version)  # same version again
        response = client.put(
            "/v1/devices/list", json={"signed_list": rollback}, headers=alice.headers
        )
        assert (response.status_code, error_code(response)) == (409, "stale_device_list")
        injected = [
            *entries,
            DeviceEntry(9, DeviceCrypto.create().identity_key, DeviceCrypto.create().signing_key),
        ]
        response = client.put(
            "/v1/devices/list",
            json={"signed_list": signed_list(alice, injected, alice.list_version + 1)},
            headers=alice.headers,
        )
        assert (response.status_code, error_code(response)) == (400, "invalid_device_list")
        swapped = [
            DeviceEntry(
                alice.device_id, DeviceCrypto.create().identity_key, alice.crypto.signing_key
            )
        ]
        response = client.put(
            "/v1/devices/list",
            json={"signed_list": signed_list(alice, swapped, alice.list_version + 1)},
            headers=alice.headers,
        )
        assert (response.status_code, error_code(response)) == (400, "invalid_device_list")
        served = client.get(f"/v1/accounts/{ALICE}/devices", headers=alice.headers).json()
        assert served["signed_list"]["payload"]  # the last good list is still the one served


def test_linking_adds_a_companion_and_only_the_primary_manages_devices(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        laptop = link_companion(client, alice)
        me = client.get("/v1/whoami", headers=laptop.headers).json()
        assert me["device_id"] == laptop.device_id and me["primary"] is False
        listing = client.get(f"/v1/accounts/{ALICE}/devices", headers=laptop.headers).json()
        assert [d["device_id"] for d in listing["devices"]] == [alice.device_id, laptop.device_id]
        # A companion cannot publish lists or open links.
        assert client.post("/v1/links", headers=laptop.headers).status_code == 403
        response = client.put(
            "/v1/devices/list",
            json={"signed_list": signed_list(alice, [alice.entry()], alice.list_version + 1)},
            headers=laptop.headers,
        )
        assert response.status_code == 403
        # Removing it through a new list revokes its credentials at once.
        publish(client, alice, [alice.entry()])
        assert client.get("/v1/whoami", headers=laptop.headers).status_code == 401
        assert client.get("/v1/mailbox", headers=laptop.headers).status_code == 401


def test_at_most_four_companions(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        for _ in range(4):
            link_companion(client, alice)
        response = client.post("/v1/links", headers=alice.headers)
        assert (response.status_code, error_code(response)) == (409, "device_limit")


def test_pending_companions_wait_for_approval_and_links_expire(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        link = client.post("/v1/links", headers=alice.headers).json()
        joined = client.post(
            f"/v1/links/{link['link_id']}/join",
            json={"device": device_keys(DeviceCrypto.create()), "proof": b64(b"p" * 32)},
        ).json()
        pending = {"Authorization": f"Bearer {joined['device_token']}"}
        assert client.get("/v1/mailbox", headers=pending).status_code == 403
        state = client.get(f"/v1/links/{link['link_id']}", headers=pending).json()
        assert (
            state["status"] == "joined" and state["device"] is None
        )  # keys shown to the primary only
        again = client.post(
            f"/v1/links/{link['link_id']}/join",
            json={"device": device_keys(DeviceCrypto.create()), "proof": b64(b"p" * 32)},
        )
        assert (again.status_code, error_code(again)) == (409, "link_state")
        server.clock.advance(seconds=601)
        expired = client.get(f"/v1/links/{link['link_id']}", headers=alice.headers).json()
        assert expired["status"] == "expired"
        assert client.get(f"/v1/links/{link['link_id']}", headers=pending).status_code == 401
        unknown = client.post(
            "/v1/links/nope/join",
            json={"device": device_keys(DeviceCrypto.create()), "proof": b64(b"p" * 32)},
        )
        assert (unknown.status_code, error_code(unknown)) == (404, "not_found")


def test_other_accounts_cannot_see_device_names(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        bob = register(client, BOB, invite(BOB))
        own = client.get(f"/v1/accounts/{ALICE}/devices", headers=alice.headers).json()
        theirs = client.get(f"/v1/accounts/{ALICE}/devices", headers=bob.headers).json()
        assert own["devices"][0]["name"] == "test"
        assert theirs["devices"][0]["name"] is None
        missing = client.get(f"/v1/accounts/{CAROL}/devices", headers=bob.headers)
        assert (missing.status_code, error_code(missing)) == (404, "unknown_account")


def test_devices_record_when_they_were_last_seen(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        registered = client.get(f"/v1/accounts/{ALICE}/devices", headers=alice.headers).json()
        server.clock.advance(hours=2)
        client.get("/v1/mailbox", headers=alice.headers)
        later = client.get(f"/v1/accounts/{ALICE}/devices", headers=alice.headers).json()
        assert later["devices"][0]["last_seen_at"] > registered["devices"][0]["last_seen_at"]
