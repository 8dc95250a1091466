"""Image previews: PNG decoding (every filter) and half-block cells."""

from __future__ import annotations

import struct
import zlib

from tidings.tui.preview import decode_png, preview


def png(width: int, height: int, rows: list[bytes], colour: int = 2) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


RED, BLUE = bytes([255, 0, 0]), bytes([0, 0, 255])


def test_two_by_two_rgb_with_sub_and_up_filters() -> None:
    # Row 0 unfiltered: red, blue. Row 1 "up" filter with zero deltas: the same as row 0.
    data = png(2, 2, [b"\x00" + RED + BLUE, b"\x02" + bytes(6)])
    assert decode_png(data) == [[(255, 0, 0), (0, 0, 255)], [(255, 0, 0), (0, 0, 255)]]
    sub = png(2, 1, [b"\x01" + RED + bytes([1, 0, 255])])  # the left pixel plus the delta, mod 256
    assert decode_png(sub) == [[(255, 0, 0), (0, 0, 255)]]
    cells = preview(data)
    assert cells is not None and cells.plain == "▀▀"
    styles = [span.style for span in cells.spans]
    assert str(styles[0]) == "#ff0000 on #ff0000" and str(styles[1]) == "#0000ff on #0000ff"


def test_grey_alpha_is_composited_and_big_images_are_scaled_down() -> None:
    grey = png(1, 1, [b"\x00" + bytes([200, 0])], colour=4)  # fully transparent grey
    assert decode_png(grey) == [[(0, 0, 0)]]
    wide = png(200, 2, [b"\x00" + RED * 200, b"\x00" + BLUE * 200])
    cells = preview(wide, max_width=40)
    assert cells is not None and len(cells.plain) <= 40


def test_what_is_not_a_readable_png_has_no_preview() -> None:
    assert preview(b"GIF89a...") is None
    assert preview(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20) is None  # truncated
    sixteen_bit = png(1, 1, [b"\x00" + bytes(6)]).replace(
        struct.pack(">IIBB", 1, 1, 8, 2), struct.pack(">IIBB", 1, 1, 16, 2)
    )
    assert preview(sixteen_bit) is None
    bad_filter = png(1, 1, [b"\x09" + RED])
    assert preview(bad_filter) is None
