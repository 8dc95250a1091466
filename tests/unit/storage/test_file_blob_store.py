"""The filesystem blob store: keys cannot escape the folder, writes are all-or-nothing."""

from __future__ import annotations

import pytest

from tidings.storage import BlobNotFound, FileBlobStore, InvalidBlobKey, check_key


async def test_put_get_exists_delete(tmp_path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    assert not await store.exists("a/b")
    await store.put("a/b", b"one")
    await store.put("a/b", b"two")  # replaces
    assert await store.get("a/b") == b"two" and await store.exists("a/b")
    await store.delete("a/b")
    await store.delete("a/b")  # deleting twice is fine
    with pytest.raises(BlobNotFound):
        await store.get("a/b")
    # No temporary files are left behind.
    assert [p.name for p in (tmp_path / "blobs" / "a").iterdir()] == []


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a//b",
        ".hidden",
        "a/.b",
        "A",
        "a\\b",
        "a b",
        "x" * 600,
        "a/\x00",
    ],
)
def test_keys_that_could_escape_or_confuse_are_refused(key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_key(key)


async def test_the_store_refuses_bad_keys_before_touching_disk(tmp_path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidBlobKey):
        await store.put("../outside", b"x")
    assert not (tmp_path / "outside").exists()
    assert check_key("attachments/0af3-9.bin") == "attachments/0af3-9.bin"
