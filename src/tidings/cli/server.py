"""Server-side commands: `serve` and `admin`."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import logging
import sys
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console

from tidings.cli.errors import fail
from tidings.cli.runner import (
    DataOption,
    DbOption,
    JsonObjectOption,
    prepare,
    prepared,
    run,
    settings_for,
)
from tidings.config import Settings
from tidings.runtime import build_runtime

out = Console(soft_wrap=True)  # command lines must stay copyable, never wrapped

DEMO_PHONES = ("+15550100001", "+15550100002")


def lock_sqlite(settings: Settings) -> Any:
    """One node per SQLite file: a second `serve` on the same data folder refuses to start."""
    handle = (settings.data_dir / "serve.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise fail(
            f"another Tidings server is already using {settings.data_dir}; SQLite serves one node."
            " Use PostgreSQL (--db) to run several."
        ) from None
    return handle


def server_config(app: Any, settings: Settings, log_level: str) -> uvicorn.Config:
    server = settings.server
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level=log_level,
        # Longer than clients keep an idle connection (httpx, the SDK's client: 5 s): a server
        # that closes first races the client's next request on that connection, which then
        # fails with "Server disconnected without sending a response" (seen under load when
        # both were 5 s; a POST is not retried by most clients).
        timeout_keep_alive=server.keep_alive_seconds,
        ws_ping_interval=server.websocket_heartbeat_seconds,
        ws_ping_timeout=server.websocket_heartbeat_seconds,
        # Frames carry ciphertext, which does not compress; per-connection deflate state
        # would cost memory on every idle device connection (see docs/performance.md).
        ws_per_message_deflate=False,
        ws=server.websocket_implementation,
    )


def install(app: typer.Typer) -> None:
    admin = typer.Typer(
        help="Operator commands that act directly on a data folder.", no_args_is_help=True
    )
    app.add_typer(admin, name="admin")

    @app.command()
    def serve(
        data: DataOption = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
        db: DbOption = None,
        demo: Annotated[
            bool, typer.Option("--demo", help="Print invite codes for demo numbers.")
        ] = False,
        log_level: Annotated[str, typer.Option(help="Server log level.")] = "info",
    ) -> None:
        """Run the Tidings server (HTTP API and websocket gateway)."""
        settings = settings_for(data, db, host=host, port=port)
        prepare(settings)
        lock = lock_sqlite(settings) if settings.is_sqlite else None
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # httpx logs every request at INFO; the API devices' in-process calls would drown the log.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
        from tidings.app import create_app

        runtime = build_runtime(settings)
        shop = None
        if demo:
            from tidings.cli.demo import start_shop

            api_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
            shop = asyncio.run(start_shop(settings, api_url))
            asyncio.run(_print_demo(settings, host, port, shop))
        url = f"http://{host}:{port}"
        out.print(f"Tidings is listening on [bold]{url}[/bold]  (data: {settings.data_dir})")
        app = create_app(runtime)
        # Everything loaded so far (modules, routes, models) lives as long as the process: out
        # of the collector's reach, a full collection scans only what came after. With 2,000
        # idle device connections one took 330-600 ms, stalling every push; 60-110 ms frozen.
        gc.collect()
        gc.freeze()
        sys.setswitchinterval(settings.server.switch_interval_ms / 1000)
        uvicorn.Server(server_config(app, settings, log_level)).run()
        if shop is not None:
            shop.stop()
        if lock is not None:
            lock.close()

    @admin.command("invite")
    def invite(
        phone: Annotated[
            str, typer.Argument(help="Phone number to invite, in international format.")
        ],
        data: DataOption = None,
        db: DbOption = None,
        json_output: JsonObjectOption = False,
    ) -> None:
        """Issue a one-time registration code for PHONE and print it."""
        issued = run(_invite(prepared(data, db), phone))
        if json_output:
            print(
                json.dumps(
                    {"phone": issued.phone, "code": issued.code, "expires_at": issued.expires_at}
                )
            )
        else:
            print(issued.code)


async def _invite(settings: Settings, phone: str) -> Any:
    runtime = build_runtime(settings)
    try:
        async with runtime.database.unit_of_work() as uow:
            return await runtime.accounts.invite(uow, phone)
    finally:
        await runtime.close()


async def _print_demo(settings: Settings, host: str, port: int, shop: Any) -> None:
    lines = []
    for phone in DEMO_PHONES:
        issued = await _invite(settings, phone)
        lines.append((phone, issued.code))
    server = f"http://{host}:{port}"
    if shop is not None:
        out.print(
            f"[bold]Demo business[/bold] Acme Demo Shop is {shop.phone}: its bot answers through"
            f" the Business API (webhooks at {shop.webhook_url}).",
            highlight=False,
        )
    out.print("[bold]Demo customers[/bold] (one-time invites, valid for 7 days); open the app:")
    for (phone, code), name in zip(lines, ("alice", "bob"), strict=True):
        out.print(
            f"  tidings chat --server {server} --phone {phone} --code {code}"
            f" --profile ~/.tidings/{name}" + (f" --open {shop.phone}" if shop else ""),
            highlight=False,
        )
    if shop is not None:
        out.print(f"and write 'hi' to the shop ({shop.phone}).", highlight=False)
