"""httpcore (under httpx) runs `import sniffio` twice per request to learn which async library
runs it. Without sniffio installed, each failed import searches all of sys.path again: about
0.4 ms, measured as most of the CPU of a small POST. Recording the absence once makes the
import fail at once; httpcore then assumes asyncio, as it would anyway."""

from __future__ import annotations

import sys


def note_missing_sniffio() -> None:
    """Make a missing sniffio a cheap, immediate ImportError from now on (idempotent)."""
    if "sniffio" in sys.modules:
        return
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
