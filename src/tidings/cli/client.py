"""Device commands (register, link, devices, send, listen, whoami): thin wrappers over
tidings.sdk. Every failure prints a message on stderr and exits non-zero; SDK errors print
their stable code first, so scripts can match on it."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import qrcode
import typer
from rich.console import Console
from rich.table import Table

from tidings.cli.errors import fail
from tidings.sdk import (
    DeviceClient,
    DeviceListChanged,
    Event,
    IncomingMessage,
    ReceiptEvent,
    SdkError,
    SecurityNotice,
    TypingEvent,
)

out = Console(highlight=False, soft_wrap=True)  # codes and commands must stay copyable
err = Console(stderr=True, highlight=False)
T = TypeVar("T")

DEFAULT_PROFILE = Path("~/.tidings/default")

ProfileOption = Annotated[
    Path,
    typer.Option(
        "--profile",
        help="Folder holding this device's sealed keys and history.",
        show_default="~/.tidings/default",
    ),
]
ServerOption = Annotated[
    str,
    typer.Option("--server", help="Base URL of the Tidings server, e.g. http://127.0.0.1:8080."),
]
NameOption = Annotated[
    str, typer.Option("--name", help="A name for this device, shown on your other devices.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of text.")
]


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one async command body; SDK errors become `error: <code>: <message>`, exit 1."""
    try:
        return asyncio.run(factory())
    except SdkError as exc:
        raise fail(f"{exc.code}: {exc.message}") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _opened(profile: Path) -> DeviceClient:
    return await DeviceClient.open(profile)  # the store expands ~ itself


# -- account set-up ---------------------------------------------------------------------------


def register(
    server: ServerOption,
    phone: Annotated[str, typer.Option("--phone", help="Your number in international format.")],
    code: Annotated[str, typer.Option("--code", help="The verification or invite code.")],
    profile: ProfileOption = DEFAULT_PROFILE,
    name: NameOption = "",
) -> None:
    """Register a phone number with this new device as its primary (it holds the account key)."""

    async def body() -> None:
        client = await DeviceClient.register(server, phone, code, profile.expanduser(), name)
        async with client:
            out.print(f"Registered {client.phone} as device {client.device_id} (primary).")
            out.print(f"Keys are sealed in {profile.expanduser()}.")

    run(body)


def whoami(profile: ProfileOption = DEFAULT_PROFILE, as_json: JsonOption = False) -> None:
    """Show which account and device this profile is, as the server sees it."""

    async def body() -> None:
        async with await _opened(profile) as client:
            me = await client.api.whoami()
            info = {
                "phone": me.phone,
                "device_id": me.device_id,
                "primary": me.primary,
                "account_key": me.account_key,
                "server": client.api.base_url,
            }
            if as_json:
                out.print_json(data=info)
                return
            role = "primary" if me.primary else "companion"
            out.print(f"{me.phone}, device {me.device_id} ({role}) on {client.api.base_url}")
            out.print(f"account key: {me.account_key}")

    run(body)


link_app = typer.Typer(
    help="Link a companion device (laptop, tablet) to your account.", no_args_is_help=True
)


@link_app.command("show")
def link_show(
    profile: ProfileOption = DEFAULT_PROFILE,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the companion to join.")
    ] = 600.0,
) -> None:
    """On the primary: show a link code, wait for the companion to join, and approve it."""

    async def body() -> None:
        async with await _opened(profile) as client:
            link = await client.open_link()
            out.print("On the new device run:")
            out.print(f"  tidings link join {link.code} --server {client.api.base_url}")
            if sys.stdout.isatty():
                qr = qrcode.QRCode(border=1)
                qr.add_data(link.qr_text)
                qr.print_ascii(out=sys.stdout)
            out.print(f"Waiting for the companion (up to {timeout:g}s)...")
            linked = await client.wait_for_join(link, timeout=timeout)
            label = f" ({linked.name})" if linked.name else ""
            out.print(f"Linked device {linked.device_id}{label}; device list v{linked.version}.")

    run(body)


@link_app.command("join")
def link_join(
    code: Annotated[str, typer.Argument(help="The code `tidings link show` printed.")],
    server: ServerOption,
    profile: ProfileOption = DEFAULT_PROFILE,
    name: NameOption = "",
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the primary's approval.")
    ] = 600.0,
) -> None:
    """On the new companion: join the account whose primary shows CODE."""

    async def body() -> None:
        client = await DeviceClient.join(server, code, profile.expanduser(), name, timeout=timeout)
        async with client:
            out.print(f"Linked to {client.phone} as device {client.device_id}.")

    run(body)


# -- devices, sending, receiving --------------------------------------------------------------


def devices(
    profile: ProfileOption = DEFAULT_PROFILE,
    remove: Annotated[
        int | None,
        typer.Option("--remove", help="Remove this device id from the account (primary only)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List this account's devices (verified against the signed device list)."""

    async def body() -> None:
        async with await _opened(profile) as client:
            if remove is not None:
                await client.remove_device(remove)
                if not as_json:
                    out.print(f"Removed device {remove}.")
            listed = await client.list_devices()
            if as_json:
                print(json.dumps([vars(d) for d in listed], indent=2))
                return
            table = Table("id", "name", "role", "last seen", box=None, pad_edge=False)
            for d in listed:
                role = "primary" if d.primary else "companion"
                if d.this_device:
                    role += " (this device)"
                seen = (d.last_seen_at or "")[:16].replace("T", " ")
                table.add_row(str(d.device_id), d.name or "-", role, seen)
            out.print(table)

    run(body)


def send(
    text: Annotated[str, typer.Argument(help="The message text.")],
    to: Annotated[str, typer.Option("--to", help="Recipient phone number.")],
    profile: ProfileOption = DEFAULT_PROFILE,
) -> None:
    """Encrypt a text message for every device of the recipient (and your other devices)."""

    async def body() -> None:
        async with await _opened(profile) as client:
            message_id = await client.send_text(to, text)
            out.print(f"Sent {message_id}")

    run(body)


def listen(
    profile: ProfileOption = DEFAULT_PROFILE,
    as_json: JsonOption = False,
    once: Annotated[
        bool,
        typer.Option("--once", help="Print what has arrived (waiting for the first), then exit."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="With --once: seconds to wait for the first item.")
    ] = 10.0,
    read_receipts: Annotated[
        bool,
        typer.Option(
            "--read-receipts/--no-read-receipts",
            help="Tell senders their messages were read once printed (delivered receipts are"
            " always sent).",
        ),
    ] = True,
) -> None:
    """Decrypt and print incoming messages and receipts; runs until Ctrl-C (or see --once)."""

    async def body() -> None:
        async with await _opened(profile) as client:
            if once:
                events = await client.receive_once(timeout)
                for event in events:
                    show(event, client, as_json)
                if read_receipts:
                    await mark_shown_as_read(client, events)
                return
            async for event in client.listen():
                show(event, client, as_json)
                if read_receipts:
                    await mark_shown_as_read(client, [event])

    run(body)


async def mark_shown_as_read(client: DeviceClient, events: list[Event]) -> None:
    """Printed messages from other accounts count as read; one receipt per sender."""
    by_sender: dict[str, list[str]] = {}
    for event in events:
        if isinstance(event, IncomingMessage) and not event.own:
            by_sender.setdefault(event.sender, []).append(event.id)
    for sender, message_ids in by_sender.items():
        await client.mark_read(sender, message_ids)


def event_json(event: IncomingMessage | ReceiptEvent, client: DeviceClient) -> dict[str, Any]:
    if isinstance(event, IncomingMessage):
        return {
            "kind": "message",
            "id": event.id,
            "from": event.sender,
            "from_device": event.sender_device,
            "to": event.to,
            "text": event.text,
            "ts": event.ts,
            "own": event.own,
            "content": event.content,
        }
    return {
        "kind": "receipt",
        "id": None,
        "from": event.by,
        "from_device": event.by_device,
        "to": client.phone,
        "text": None,
        "ts": int(time.time() * 1000),
        "type": event.type,
        "message_ids": list(event.message_ids),
        "by": event.by,
    }


def show(event: Event, client: DeviceClient, as_json: bool) -> None:
    if isinstance(event, SecurityNotice):
        err.print(f"[yellow]notice:[/yellow] {event.message}")
        return
    if isinstance(event, DeviceListChanged):
        err.print(f"devices of {event.phone} changed (v{event.version})")
        return
    if isinstance(event, TypingEvent):
        if not as_json:
            err.print(f"{event.sender} is typing...")
        return
    if as_json:
        sys.stdout.write(json.dumps(event_json(event, client), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    if isinstance(event, IncomingMessage):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts / 1000))
        who = "you" if event.own else event.sender
        arrow = f" -> {event.to}" if event.own else ""
        template = event.content.get("template")
        if event.content.get("type") == "template" and isinstance(template, dict):
            body = "\n".join(template_lines(template))
        else:
            body = event.text if event.text is not None else json.dumps(event.content)
        out.print(f"[{stamp}] {who} (device {event.sender_device}){arrow}: {body}", markup=False)
    else:
        count = len(event.message_ids)
        out.print(f"{event.type} by {event.by}: {count} message(s)")


def _header_line(header: dict[str, Any]) -> str | None:
    fmt = str(header.get("format", "")).upper()
    if fmt == "TEXT":
        return str(header.get("text", ""))
    if fmt == "LOCATION":
        place = header.get("location") or {}
        label = ", ".join(str(place[k]) for k in ("name", "address") if place.get(k))
        where = f"{place.get('latitude')}, {place.get('longitude')}"
        return f"[location: {label} ({where})]" if label else f"[location: {where}]"
    media = next((header[k] for k in ("image", "video", "document") if k in header), None)
    if isinstance(media, dict):
        attachment = media.get("attachment") or {}
        name = media.get("filename") or attachment.get("filename") or attachment.get("mime_type")
        return f"[{fmt.lower()}: {name}]" if name else f"[{fmt.lower()}]"
    return None


def _button_label(button: dict[str, Any]) -> str:
    text = str(button.get("text", ""))
    kind = str(button.get("type", "")).upper()
    if kind == "URL":
        return f"[{text} -> {button.get('url')}]"
    if kind == "PHONE_NUMBER":
        return f"[{text}: {button.get('phone_number')}]"
    if kind in ("COPY_CODE", "OTP"):
        return f"[{text}: {button.get('code')}]"
    return f"[{text}]"


def template_lines(template: dict[str, Any]) -> list[str]:
    """A template message as the lines a person reads: header, body, footer, buttons."""
    lines = [f"(template {template.get('name')}, {str(template.get('category', '')).lower()})"]
    header = template.get("header")
    if isinstance(header, dict) and (line := _header_line(header)):
        lines.append(f"  {line}")
    body = template.get("body") or {}
    lines.extend(f"  {part}" for part in str(body.get("text", "")).splitlines())
    footer = template.get("footer") or {}
    if footer.get("text"):
        lines.append(f"  -- {footer['text']}")
    buttons = [b for b in template.get("buttons") or [] if isinstance(b, dict)]
    if buttons:
        lines.append("  " + " ".join(_button_label(b) for b in buttons))
    return lines


def install(app: typer.Typer) -> None:
    app.command("register")(register)
    app.command("whoami")(whoami)
    app.add_typer(link_app, name="link")
    app.command("devices")(devices)
    app.command("send")(send)
    app.command("listen")(listen)
