"""`tidings`: server commands (serve, admin) and device commands (register, link, send, ...)."""

from __future__ import annotations

import typer

from tidings.cli import business, chat, client, operators, server, templates

app = typer.Typer(
    name="tidings",
    help="Tidings: self-hosted, end-to-end encrypted business messaging.",
    no_args_is_help=True,
    add_completion=False,
)
server.install(app)
operators.install(app)  # `tidings admin token ...`
client.install(app)
business.install(app)
templates.install(app)
chat.install(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
