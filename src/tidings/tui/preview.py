"""Image previews in any colour terminal: each character cell shows two pixels, the upper one
as the foreground of '▀' and the lower one as its background.

Only PNG (8-bit grey, RGB, RGBA, grey+alpha; not interlaced) is decoded, with the standard
library; anything else has no preview and is opened with the system viewer instead.
"""

from __future__ import annotations

import struct
import zlib

from rich.style import Style
from rich.text import Text

MAX_WIDTH = 48  # cells
MAX_HEIGHT = 16  # cells (32 pixels)
MAX_PIXELS = 4096 * 4096
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}

Pixel = tuple[int, int, int]


def decode_png(data: bytes) -> list[list[Pixel]] | None:
    """Rows of RGB pixels (alpha composited on black), or None if this is not a PNG we read."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    try:
        return _decode(data)
    except (struct.error, zlib.error, ValueError, IndexError):
        return None


def _decode(data: bytes) -> list[list[Pixel]] | None:
    position, header, chunks = 8, b"", []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = _CHANNELS.get(colour)
    if channels is None or depth != 8 or interlace or width * height > MAX_PIXELS:
        return None
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[list[Pixel]] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, channels)
        rows.append([_pixel(line, x * channels, channels) for x in range(width)])
        previous = line
    return rows


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        corner = previous[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            estimate = left + up - corner
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
            best = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            line[i] = (line[i] + best) & 0xFF
        elif kind != 0:
            raise ValueError(f"unknown PNG filter {kind}")


def _pixel(line: bytearray, at: int, channels: int) -> Pixel:
    if channels in (1, 2):
        grey = line[at]
        alpha = line[at + 1] if channels == 2 else 255
        value = grey * alpha // 255
        return (value, value, value)
    alpha = line[at + 3] if channels == 4 else 255
    return (
        line[at] * alpha // 255,
        line[at + 1] * alpha // 255,
        line[at + 2] * alpha // 255,
    )


def preview(data: bytes, max_width: int = MAX_WIDTH, max_height: int = MAX_HEIGHT) -> Text | None:
    """The image scaled to fit `max_width` by `max_height` cells, or None."""
    pixels = decode_png(data)
    if not pixels or not pixels[0]:
        return None
    height, width = len(pixels), len(pixels[0])
    scale = max(width / max_width, height / (max_height * 2), 1.0)
    cols, rows = max(1, int(width / scale)), max(1, int(height / scale))

    def at(x: int, y: int) -> Pixel:
        return pixels[min(height - 1, int(y * scale))][min(width - 1, int(x * scale))]

    out = Text()
    for row in range(0, rows, 2):
        for col in range(cols):
            top = at(col, row)
            bottom = at(col, row + 1) if row + 1 < rows else (0, 0, 0)
            out.append("▀", Style(color=_hex(top), bgcolor=_hex(bottom)))
        if row + 2 < rows:
            out.append("\n")
    return out


def _hex(pixel: Pixel) -> str:
    return "#{:02x}{:02x}{:02x}".format(*pixel)
