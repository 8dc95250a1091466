"""First run: register this profile as a new account's primary device with an invite code
(`tidings serve --demo` prints one), or link it to an existing account with a link code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from tidings.sdk.client import DeviceClient
from tidings.sdk.errors import SdkError

DEMO_SERVER = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Registration:
    """What the command line already knows; a complete one registers without asking."""

    server: str = DEMO_SERVER
    phone: str = ""
    code: str = ""
    name: str = "terminal"

    @property
    def complete(self) -> bool:
        return bool(self.server and self.phone and self.code)


class RegisterScreen(Screen[DeviceClient | None]):
    DEFAULT_CSS = """
    RegisterScreen { align: center middle; }
    RegisterScreen > Vertical { width: 76; height: auto; border: thick $accent; padding: 1 2; }
    RegisterScreen Horizontal { height: auto; }
    RegisterScreen Button { margin-right: 1; }
    RegisterScreen #error { color: $error; }
    """

    def __init__(self, profile: Path, registration: Registration) -> None:
        super().__init__()
        self.profile = profile
        self.registration = registration

    def compose(self) -> ComposeResult:
        given = self.registration
        with Vertical():
            yield Label("Welcome to Tidings", classes="title")
            yield Static(
                f"This profile ({self.profile}) has no account yet. Register with the invite"
                " code the server printed (`tidings serve --demo` prints one for the demo"
                " numbers), or paste a link code from your primary device to link this one."
            )
            yield Input(given.server, placeholder="server URL", id="server")
            yield Input(given.phone, placeholder="your phone number, e.g. +15550100001", id="phone")
            yield Input(given.code, placeholder="invite code, or link code", id="code")
            yield Label("", id="error")
            with Horizontal():
                yield Button("Register", id="register", variant="primary")
                yield Button("Link to my account", id="link")
                yield Button("Quit", id="quit")
        yield Footer()

    def on_mount(self) -> None:
        if self.registration.complete:
            self.submit("register")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "quit":
            self.dismiss(None)
        elif event.button.id in ("register", "link"):
            self.submit(event.button.id)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.submit("register")

    def say(self, text: str) -> None:
        self.query_one("#error", Label).update(text)
        bump = getattr(self.app, "bump", None)  # lets scripts and tests wait on the screen
        if bump is not None:
            bump()

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    @work(exclusive=True, group="register")
    async def submit(self, how: str) -> None:
        server, phone, code = self.value("server"), self.value("phone"), self.value("code")
        if not server or not code or (how == "register" and not phone):
            self.say("Fill in the server, your phone number and the code.")
            return
        app = self.app
        transport = getattr(app, "transport", None)
        clock = getattr(app, "clock", None)
        self.say("Registering…" if how == "register" else "Waiting for your primary device…")
        try:
            if how == "register":
                client = await DeviceClient.register(
                    server,
                    phone,
                    code,
                    self.profile,
                    self.registration.name,
                    transport=transport,
                    clock=clock,
                )
            else:
                client = await DeviceClient.join(
                    server,
                    code,
                    self.profile,
                    self.registration.name,
                    timeout=300,
                    transport=transport,
                    clock=clock,
                )
        except SdkError as exc:
            self.say(exc.message)
            return
        self.dismiss(client)
