"""`tidings business`: provision businesses for the Cloud-API-compatible Business API."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

from tidings.business.service import ALL_SCOPES, Provisioned, graph_id
from tidings.cli.costs import cost_json, cost_report, cost_table
from tidings.cli.errors import fail
from tidings.cli.server import DataOption, DbOption, prepare, settings_for
from tidings.config import Settings
from tidings.errors import AppError, ValidationFailed
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone
from tidings.policy.throughput import ThroughputLevel
from tidings.runtime import build_runtime

out = Console(soft_wrap=True, highlight=False)


def install(app: typer.Typer) -> None:
    business = typer.Typer(
        help="Businesses on the Business API (WhatsApp Cloud API compatible).",
        no_args_is_help=True,
    )
    app.add_typer(business, name="business")

    @business.command("create")
    def create(
        name: Annotated[
            str, typer.Option("--name", help="The business's name (also its verified name).")
        ],
        phone: Annotated[
            str, typer.Option("--phone", help="The business phone number, international format.")
        ],
        data: DataOption = None,
        db: DbOption = None,
        json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Create a business (WABA): a phone number with its API device, a token, an app secret."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            made = asyncio.run(_create(settings, name, phone))
        except AppError as exc:
            raise fail(exc.message) from None
        if json_output:
            print(
                json.dumps(
                    {
                        "waba_id": made.waba_id,
                        "phone_number_id": made.phone_number_id,
                        "access_token": made.access_token,
                        "app_secret": made.app_secret,
                        "app_id": made.app_id,
                        "phone": made.phone,
                    }
                )
            )
            return
        out.print(f"Business {name!r} created.")
        for label, value in (
            ("waba_id", made.waba_id),
            ("phone_number_id", made.phone_number_id),
            ("phone", made.phone),
            ("access_token", made.access_token),
            ("app_id", made.app_id),
            ("app_secret", made.app_secret),
        ):
            out.print(f"  {label:<16} {value}")
        out.print("Keep the token and the app secret: they are not shown again.")

    @business.command("token")
    def token(
        waba_id: Annotated[str, typer.Option("--waba-id", help="The business (WABA) id.")],
        scope: Annotated[
            list[str] | None,
            typer.Option(
                "--scope", help=f"Repeat for several; default all: {', '.join(ALL_SCOPES)}."
            ),
        ] = None,
        expires_in_days: Annotated[
            int | None, typer.Option("--expires-in-days", help="Expiry; default never.")
        ] = None,
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Issue another system-user access token for a business and print it."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            print(
                asyncio.run(_token(settings, waba_id, tuple(scope or ALL_SCOPES), expires_in_days))
            )
        except AppError as exc:
            raise fail(exc.message) from None

    @business.command("revoke")
    def revoke(
        access_token: Annotated[str, typer.Argument(help="The token to revoke.")],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Revoke an access token at once."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            asyncio.run(_revoke(settings, access_token))
        except AppError as exc:
            raise fail(exc.message) from None
        out.print("Token revoked.")

    @business.command("webhook")
    def webhook(
        phone_number_id: Annotated[
            str, typer.Option("--phone-number-id", help="The phone number's id.")
        ],
        url: Annotated[
            str, typer.Option("--url", help="Your endpoint, e.g. https://crm.example/hook.")
        ],
        verify_token: Annotated[
            str, typer.Option("--verify-token", help="Echoed in the GET handshake.")
        ],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Send this phone number's webhooks to URL (verified with Meta's GET handshake first)."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            asyncio.run(_webhook(settings, phone_number_id, url, verify_token))
        except AppError as exc:
            raise fail(exc.message) from None
        out.print(f"Webhooks for {phone_number_id} now go to {url}")

    @business.command("costs")
    def costs(
        waba_id: Annotated[str, typer.Option("--waba-id", help="The business (WABA) id.")],
        start: Annotated[
            str | None, typer.Option("--start", help="First day (UTC), default 6 days ago.")
        ] = None,
        end: Annotated[
            str | None, typer.Option("--end", help="Last day (UTC, included), default today.")
        ] = None,
        data: DataOption = None,
        db: DbOption = None,
        json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """What delivered messages cost, per day, pricing category and type."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            report = asyncio.run(cost_report(settings, waba_id, start, end))
        except AppError as exc:
            raise fail(exc.message) from None
        if json_output:
            print(json.dumps(cost_json(report)))
        else:
            out.print(cost_table(report))

    @business.command("throughput")
    def throughput(
        phone_number_id: Annotated[
            str, typer.Option("--phone-number-id", help="The phone number's id.")
        ],
        level: Annotated[
            ThroughputLevel,
            typer.Option("--level", help="STANDARD (80/s), HIGH (1,000/s) or COEXISTENCE (20/s)."),
        ],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Set a number's throughput level (moving to HIGH sends THROUGHPUT_UPGRADE)."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            asyncio.run(_throughput(settings, phone_number_id, level))
        except AppError as exc:
            raise fail(exc.message) from None
        out.print(f"{phone_number_id} now sends at the {level} level.")

    @business.command("consents")
    def consents(
        phone_number_id: Annotated[
            str, typer.Option("--phone-number-id", help="A phone number of the business.")
        ],
        wa_id: Annotated[
            str | None, typer.Option("--wa-id", help="Only this customer (international format).")
        ] = None,
        after: Annotated[int, typer.Option("--after", min=0, help="Records after this id.")] = 0,
        limit: Annotated[
            int, typer.Option("--limit", min=1, max=1000, help="At most this many.")
        ] = 1000,
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Export the business's consent ledger as JSON evidence (opt-ins with their wording,
        opt-outs by keyword or "Stop promotions", resumes), in the order recorded."""
        settings = settings_for(data, db)
        prepare(settings)
        try:
            records = asyncio.run(_consents(settings, phone_number_id, wa_id, after, limit))
        except AppError as exc:
            raise fail(exc.message) from None
        print(json.dumps({"data": records}, ensure_ascii=False))


async def _consents(
    settings: Settings, phone_number_id: str, wa_id: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    runtime = build_runtime(settings)
    try:
        phone = await runtime.businesses.phone_by_number_id(phone_number_id)
        customer = None
        if wa_id is not None:
            try:
                customer = normalize_phone(wa_id if wa_id.startswith("+") else f"+{wa_id}")
            except InvalidPhoneNumber as exc:
                raise ValidationFailed(f"--wa-id: {exc}") from exc
        entries = await runtime.signals.consent_evidence(phone, customer, after, limit)
        return [entry.to_evidence() for entry in entries]
    finally:
        await runtime.close()


async def _throughput(settings: Settings, phone_number_id: str, level: ThroughputLevel) -> None:
    runtime = build_runtime(settings)
    try:
        phone = await runtime.businesses.phone_by_number_id(phone_number_id)
        await runtime.messaging_limits.set_throughput_level(phone, level)
    finally:
        await runtime.close()


async def _token(
    settings: Settings, waba_id: str, scopes: tuple[str, ...], days: int | None
) -> str:
    runtime = build_runtime(settings)
    try:
        ttl = timedelta(days=days) if days else None
        return await runtime.businesses.issue_token(waba_id, scopes, label="cli", ttl=ttl)
    finally:
        await runtime.close()


async def _revoke(settings: Settings, token: str) -> None:
    runtime = build_runtime(settings)
    try:
        await runtime.businesses.revoke_token(token)
    finally:
        await runtime.close()


async def _create(settings: Settings, name: str, phone: str) -> Provisioned:
    runtime = build_runtime(settings)
    try:
        from tidings.app import create_app

        create_app(runtime)  # gives the API device an in-process route to the core
        e164 = await runtime.businesses.check_available(phone)
        async with runtime.database.unit_of_work() as uow:
            code = (await runtime.accounts.invite(uow, e164)).code
        phone_number_id = graph_id()
        await runtime.api_devices.register(phone_number_id, e164, code, name)
        return await runtime.businesses.create(name, e164, phone_number_id=phone_number_id)
    finally:
        await runtime.close()


async def _webhook(settings: Settings, phone_number_id: str, url: str, verify_token: str) -> Any:
    runtime = build_runtime(settings)
    try:
        phone = await runtime.businesses.phone_by_number_id(phone_number_id)
        # Meta delivers nothing for a WABA no app subscribes to; the CLI does both steps.
        await runtime.webhooks.subscribe_app(phone.waba_id)
        await runtime.webhooks.set_phone_override(
            phone.phone_number_id, phone.waba_id, url, verify_token
        )
    finally:
        await runtime.close()
