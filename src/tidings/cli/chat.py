"""`tidings chat`: open the terminal app on a device profile (registering it first if new)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidings.tui.app import ChatApp
from tidings.tui.onboarding import DEMO_SERVER, Registration


def install(app: typer.Typer) -> None:
    @app.command()
    def chat(
        profile: Annotated[
            Path, typer.Option("--profile", help="Device profile folder, e.g. ~/.tidings/alice.")
        ],
        server: Annotated[
            str, typer.Option("--server", help="Server to register with (a new profile).")
        ] = DEMO_SERVER,
        phone: Annotated[
            str, typer.Option("--phone", help="Your phone number (a new profile).")
        ] = "",
        code: Annotated[
            str, typer.Option("--code", help="Invite code; with --phone registers at once.")
        ] = "",
        name: Annotated[str, typer.Option("--name", help="This device's name.")] = "terminal",
        open_chat: Annotated[
            str | None, typer.Option("--open", help="Open the chat with this number at start.")
        ] = None,
    ) -> None:
        """Open the chat app: chats, messages with buttons and lists, devices, controls."""
        registration = Registration(server=server, phone=phone, code=code, name=name)
        ChatApp(profile, registration=registration, open_chat=open_chat).run()
