"""Media kinds, limits and content sniffing (reference/cloud-api.md §2, §10)."""

from __future__ import annotations

import pytest

from tidings.business.media import clean_filename
from tidings.business.media_types import KINDS, MediaRejected, check_media, kind_of, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20
MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 20
OGG = b"OggS" + b"\x00" * 20
PDF = b"%PDF-1.7" + b"\x00" * 20


@pytest.mark.parametrize(
    ("data", "mime", "kind"),
    [
        (PNG, "image/png", "image"),
        (JPEG, "image/jpg", "image"),
        (WEBP, "image/webp", "sticker"),
        (MP4, "video/mp4", "video"),
        (MP4, "audio/mp4", "audio"),
        (OGG, "audio/ogg; codecs=opus", "audio"),
        (PDF, "application/pdf", "document"),
        (b"hello", "text/plain", "document"),
        (PNG, None, "image"),
    ],
)
def test_accepted(data: bytes, mime: str | None, kind: str) -> None:
    assert check_media(data, mime)[0] == kind


@pytest.mark.parametrize(
    ("data", "mime", "kind"),
    [
        (PDF, "image/png", None),  # content mismatch
        (PNG, "image/jpeg", None),
        (b"MZ\x90\x00", "image/png", None),  # an executable named .png
        (PNG, "text/plain", None),
        (PNG, "image/png", "video"),  # wrong kind for the send
        (b"hello", "application/zip", None),
        (b"", "image/png", None),
        (b"\x00\x01", None, None),  # nothing to go by
        (PNG + b"\x00" * KINDS["image"].max_bytes, "image/png", None),
    ],
)
def test_refused(data: bytes, mime: str | None, kind: str | None) -> None:
    with pytest.raises(MediaRejected):
        check_media(data, mime, kind)


def test_helpers() -> None:
    assert kind_of("image/webp") == "sticker" and kind_of("application/zip") is None
    assert sniff(b"ID3\x04") == frozenset({"audio/mpeg"})
    assert clean_filename("C:\\Users\\me\\a b.pdf") == "a b.pdf"
    assert clean_filename("/tmp/x/report.pdf") == "report.pdf"
    assert clean_filename("") is None and clean_filename("dir/") == "dir"
