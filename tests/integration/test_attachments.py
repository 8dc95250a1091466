"""Network-core attachments: a device uploads ciphertext, any active device fetches it by id,
the core never holds the plaintext, ids expire after 30 days; the SDK encrypts, verifies and
decrypts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from business_support import run_in_thread
from network_support import messages, register

from conftest import RunningServer, ServerThread, invite_code
from tidings.runtime import build_runtime
from tidings.sdk import SdkError

ALICE = "+15550100001"
BOB = "+15550100002"
SECRET = b"ATTACHMENT-PLAINTEXT-91c2e7" * 100


async def test_a_file_travels_end_to_end_encrypted(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        descriptor = await alice.upload_attachment(SECRET, "text/plain", "notes.txt")
        assert set(descriptor) == {
            "id",
            "key",
            "enc_sha256",
            "sha256",
            "size",
            "mime_type",
            "filename",
        }
        await alice.send_content(BOB, {"type": "document", "document": {"attachment": descriptor}})
        [message] = messages(await bob.sync())
        received = message.content["document"]["attachment"]
        assert await bob.download_attachment(received) == SECRET
        # The core holds only ciphertext, and only under an unguessable id.
        stored = list((server.settings.data_dir / "blobs").rglob("*"))
        files = [p for p in stored if p.is_file()]
        assert len(files) == 1 and SECRET[:27] not in files[0].read_bytes()
        assert len(descriptor["id"]) == 32
        # A swapped blob or a wrong key is caught before anything is handed out.
        for tampered in (
            {**received, "enc_sha256": "0" * 64},
            {**received, "key": (await alice.upload_attachment(b"x", "text/plain"))["key"]},
            {**received, "size": 5},
        ):
            with pytest.raises(SdkError) as failed:
                await bob.download_attachment(tampered)
            assert failed.value.code == "attachment_invalid"
    finally:
        await alice.close()
        await bob.close()


async def test_only_active_devices_fetch_and_ids_must_exist(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    try:
        descriptor = await alice.upload_attachment(SECRET, "text/plain")
        path = f"/v1/attachments/{descriptor['id']}"
        token = {"Authorization": f"Bearer {alice.api.token}"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get(path)).status_code == 401
            assert (await http.post("/v1/attachments", content=b"x")).status_code == 401
            assert (await http.get(path, headers=token)).status_code == 200
            for missing in ("0" * 32, "not-an-id", descriptor["id"][:-1]):
                response = await http.get(f"/v1/attachments/{missing}", headers=token)
                assert response.status_code == 404, missing
            empty = await http.post("/v1/attachments", content=b"", headers=token)
            assert empty.status_code == 400
    finally:
        await alice.close()


@pytest.fixture
def small_server(settings, clock):
    """A server whose attachment limit is 1 KB, to test the limit without 100 MB bodies."""
    runtime = build_runtime(settings, clock=clock)
    runtime.attachments.max_bytes = 1024
    thread = ServerThread(runtime)
    thread.start()
    yield RunningServer(f"http://127.0.0.1:{thread.port}", runtime, settings, clock)
    thread.stop()


async def test_the_size_limit_holds_with_and_without_a_length(small_server, tmp_path) -> None:
    alice = await register(
        small_server, lambda phone: invite_code(small_server, phone), tmp_path, ALICE, "alice"
    )
    try:
        token = {"Authorization": f"Bearer {alice.api.token}"}

        async def chunked():
            for _ in range(4):
                yield b"x" * 512

        async with httpx.AsyncClient(base_url=small_server.url, headers=token) as http:
            assert (await http.post("/v1/attachments", content=b"x" * 1024)).status_code == 201
            over = await http.post("/v1/attachments", content=b"x" * 1025)
            assert over.status_code == 413
            streamed = await http.post("/v1/attachments", content=chunked())
            assert streamed.status_code == 413
    finally:
        await alice.close()


async def test_attachments_expire_after_30_days(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    try:
        kept = await alice.upload_attachment(b"fresh", "text/plain")
        server.clock.advance(timedelta(days=20))
        newer = await alice.upload_attachment(b"newer", "text/plain")
        server.clock.advance(timedelta(days=10, seconds=1))
        with pytest.raises(SdkError) as expired:
            await alice.download_attachment(kept)
        assert expired.value.status == 404
        assert await alice.download_attachment(newer) == b"newer"
        # The business worker's periodic pass purges too; either way only `newer` is left.
        assert await asyncio.to_thread(run_in_thread, lambda: _purge(server)) in (0, 1)
    finally:
        await alice.close()
    blobs = [p for p in (server.settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [newer["id"]]


async def _purge(server: RunningServer) -> int:
    runtime = build_runtime(server.settings, clock=server.clock)
    try:
        return await runtime.attachments.purge_expired()
    finally:
        await runtime.close()
