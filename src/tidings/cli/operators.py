"""`tidings admin token`: operator tokens for the admin API (`/admin/v1`).

    tidings admin token create --label alice [--json]   prints the token once
    tidings admin token list [--json]
    tidings admin token revoke TOKEN_ID

Only a token's hash is stored, so a lost token cannot be shown again: create another.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from tidings.admin.service import OperatorTokens
from tidings.cli.runner import (
    DataOption,
    DbOption,
    JsonLinesOption,
    JsonObjectOption,
    prepared,
    run,
    with_runtime,
)
from tidings.config import Settings

T = TypeVar("T")


def _run(settings: Settings, action: Callable[[OperatorTokens], Awaitable[T]]) -> T:
    return run(with_runtime(settings, lambda runtime: action(runtime.operator_tokens)))


def install(app: typer.Typer) -> None:
    """Add `token` to the `admin` group (`server.install` must have made it)."""
    admin = next(
        group.typer_instance
        for group in app.registered_groups
        if group.name == "admin" and group.typer_instance is not None
    )
    token = typer.Typer(help="Operator tokens for the admin HTTP API.", no_args_is_help=True)
    admin.add_typer(token, name="token")

    @token.command("create")
    def create(
        label: Annotated[
            str, typer.Option("--label", help="Who holds the token; decisions record it.")
        ],
        data: DataOption = None,
        db: DbOption = None,
        json_output: JsonObjectOption = False,
    ) -> None:
        """Create an operator token and print it (it is shown only this once)."""
        issued = _run(prepared(data, db), lambda tokens: tokens.create(label))
        if json_output:
            print(json.dumps({"id": issued.token_id, "label": issued.label, "token": issued.token}))
        else:
            print(issued.token)

    @token.command("list")
    def list_tokens(
        data: DataOption = None,
        db: DbOption = None,
        json_output: JsonLinesOption = False,
    ) -> None:
        """Operator tokens (never the tokens themselves)."""
        for info in _run(prepared(data, db), lambda tokens: tokens.list()):
            entry = {
                "id": info.token_id,
                "label": info.label,
                "created_at": info.created_at.isoformat(),
                "last_used_at": info.last_used_at.isoformat() if info.last_used_at else None,
                "revoked": info.revoked_at is not None,
            }
            if json_output:
                print(json.dumps(entry))
            else:
                state = "revoked" if entry["revoked"] else "active"
                print(f"{info.token_id}  {info.label}  {state}  created {entry['created_at']}")

    @token.command("revoke")
    def revoke(
        token_id: Annotated[int, typer.Argument(help="The token's id (see `list`).")],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Revoke an operator token at once."""
        _run(prepared(data, db), lambda tokens: tokens.revoke(token_id))
        print(f"Revoked operator token {token_id}.")
