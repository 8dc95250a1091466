"""Device commands (register, link, devices, send, listen): thin wrappers over tidings.sdk."""

from __future__ import annotations

import typer


def install(app: typer.Typer) -> None:
    """Filled in with the SDK."""
