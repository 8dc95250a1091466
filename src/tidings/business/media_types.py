"""Which files the Cloud API accepts as which kind of media, and what the bytes really are.

Pure rules (reference/cloud-api.md §2 and §10): each kind has its MIME types and a size limit.
A declared type is checked against the file's leading bytes where the format has a signature
(PNG, JPEG, WebP, PDF, Ogg, MP4/3GPP, MP3, AMR, Office), so a renamed executable cannot travel
as an "image/png". Plain text has no signature and is accepted as declared.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * 1024

_OLE = frozenset(
    {"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"}
)
_OOXML = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)


@dataclass(frozen=True)
class MediaKind:
    name: str
    mime_types: frozenset[str]
    max_bytes: int


KINDS: dict[str, MediaKind] = {
    kind.name: kind
    for kind in (
        MediaKind("image", frozenset({"image/jpeg", "image/png"}), 5 * MIB),
        MediaKind("video", frozenset({"video/mp4", "video/3gpp"}), 16 * MIB),
        MediaKind(
            "audio",
            frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
            16 * MIB,
        ),
        MediaKind(
            "document", frozenset({"text/plain", "application/pdf"}) | _OLE | _OOXML, 100 * MIB
        ),
        # Meta allows 100 KB static and 500 KB animated; we cannot tell them apart cheaply.
        MediaKind("sticker", frozenset({"image/webp"}), 500 * KIB),
    )
}
MEDIA_KINDS = tuple(KINDS)
MAX_MEDIA_BYTES = max(kind.max_bytes for kind in KINDS.values())
# Spellings clients use for the types above.
_ALIASES = {"image/jpg": "image/jpeg", "audio/mp3": "audio/mpeg", "audio/x-m4a": "audio/mp4"}
# Formats whose bytes we recognise; a declared type here must match what the bytes are.
_SIGNED = (
    frozenset(
        {
            "image/jpeg",
            "image/png",
            "image/webp",
            "application/pdf",
            "audio/ogg",
            "video/mp4",
            "video/3gpp",
            "audio/mp4",
            "audio/mpeg",
            "audio/amr",
            "audio/aac",
        }
    )
    | _OLE
    | _OOXML
)


class MediaRejected(ValueError):
    """The file is not acceptable as the kind or type it claims (Cloud API code 131053)."""


def normalize_mime(value: str | None) -> str | None:
    """Lowercase, parameters dropped ("audio/ogg; codecs=opus" is audio/ogg), aliases mapped."""
    if not value:
        return None
    mime = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(mime, mime) or None


def kind_of(mime_type: str) -> str | None:
    """The kind a MIME type belongs to (WebP is a sticker, as on WhatsApp)."""
    return next((kind.name for kind in KINDS.values() if mime_type in kind.mime_types), None)


def guess_from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    return normalize_mime(mimetypes.guess_type(filename, strict=False)[0])


def sniff(data: bytes) -> frozenset[str] | None:
    """The MIME types the leading bytes are consistent with, or None if none is recognised."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return frozenset({"image/png"})
    if head.startswith(b"\xff\xd8\xff"):
        return frozenset({"image/jpeg"})
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return frozenset({"image/webp"})
    if head.startswith(b"%PDF-"):
        return frozenset({"application/pdf"})
    if head.startswith(b"OggS"):
        return frozenset({"audio/ogg"})
    if head.startswith(b"#!AMR"):
        return frozenset({"audio/amr"})
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand.startswith(b"3g"):
            return frozenset({"video/3gpp"})
        if brand in (b"M4A ", b"M4B "):
            return frozenset({"audio/mp4"})
        return frozenset({"video/mp4", "audio/mp4", "video/3gpp"})
    if head.startswith(b"ID3"):
        return frozenset({"audio/mpeg"})
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0:
        return frozenset({"audio/aac", "audio/mpeg"})  # ADTS or MPEG audio frame sync
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return frozenset({"audio/mpeg"})
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _OLE
    if head.startswith(b"PK\x03\x04"):
        return _OOXML
    return None


def check_media(data: bytes, mime_type: str | None, kind: str | None = None) -> tuple[str, str]:
    """(kind, MIME type) of an acceptable file, or MediaRejected saying why not.

    `mime_type` is what the client declared (None: use the sniffed type); `kind` is the kind
    the file is about to be sent as, when known.
    """
    if not data:
        raise MediaRejected("the file is empty")
    sniffed = sniff(data)
    declared = normalize_mime(mime_type)
    if declared is None:
        if sniffed is None or len(sniffed) != 1:
            raise MediaRejected("the media type is missing and cannot be recognised")
        declared = next(iter(sniffed))
    found_kind = kind_of(declared)
    if found_kind is None:
        raise MediaRejected(f"{declared} is not a supported media type")
    if kind is not None and kind != found_kind:
        allowed = ", ".join(sorted(KINDS[kind].mime_types)) if kind in KINDS else "none"
        raise MediaRejected(f"{declared} cannot be sent as {kind} (allowed: {allowed})")
    if declared in _SIGNED and (sniffed is None or declared not in sniffed):
        raise MediaRejected(f"the file's content does not match its declared type {declared}")
    if declared == "text/plain" and sniffed is not None:
        raise MediaRejected("the file's content does not match its declared type text/plain")
    limit = KINDS[found_kind].max_bytes
    if len(data) > limit:
        raise MediaRejected(f"{found_kind} files may be at most {limit} bytes; got {len(data)}")
    return found_kind, declared
