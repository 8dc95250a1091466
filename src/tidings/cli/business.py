"""`tidings business`: provision businesses for the Cloud-API-compatible Business API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

from tidings.business.service import ALL_SCOPES, Provisioned, graph_id
from tidings.cli.costs import cost_json, cost_report, cost_table
from tidings.cli.runner import DataOption, DbOption, JsonObjectOption, prepared, run, with_runtime
from tidings.config import Settings
from tidings.errors import ValidationFailed
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone
from tidings.policy.throughput import ThroughputLevel
from tidings.runtime import Runtime

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
        json_output: JsonObjectOption = False,
    ) -> None:
        """Create a business (WABA): a phone number with its API device, a token, an app secret."""
        made = run(_create(prepared(data, db), name, phone))
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
        settings = prepared(data, db)
        print(run(_token(settings, waba_id, tuple(scope or ALL_SCOPES), expires_in_days)))

    @business.command("revoke")
    def revoke(
        access_token: Annotated[str, typer.Argument(help="The token to revoke.")],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Revoke an access token at once."""
        run(_revoke(prepared(data, db), access_token))
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
        run(_webhook(prepared(data, db), phone_number_id, url, verify_token))
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
        json_output: JsonObjectOption = False,
    ) -> None:
        """What delivered messages cost, per day, pricing category and type."""
        report = run(cost_report(prepared(data, db), waba_id, start, end))
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
        run(_throughput(prepared(data, db), phone_number_id, level))
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
        records = run(_consents(prepared(data, db), phone_number_id, wa_id, after, limit))
        print(json.dumps({"data": records}, ensure_ascii=False))


async def _consents(
    settings: Settings, phone_number_id: str, wa_id: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    async def export(runtime: Runtime) -> list[dict[str, Any]]:
        phone = await runtime.businesses.phone_by_number_id(phone_number_id)
        customer = None
        if wa_id is not None:
            try:
                customer = normalize_phone(wa_id if wa_id.startswith("+") else f"+{wa_id}")
            except InvalidPhoneNumber as exc:
                raise ValidationFailed(f"--wa-id: {exc}") from exc
        entries = await runtime.signals.consent_evidence(phone, customer, after, limit)
        return [entry.to_evidence() for entry in entries]

    return await with_runtime(settings, export)


async def _throughput(settings: Settings, phone_number_id: str, level: ThroughputLevel) -> None:
    async def set_level(runtime: Runtime) -> None:
        phone = await runtime.businesses.phone_by_number_id(phone_number_id)
        await runtime.messaging_limits.set_throughput_level(phone, level)

    await with_runtime(settings, set_level)


async def _token(
    settings: Settings, waba_id: str, scopes: tuple[str, ...], days: int | None
) -> str:
    ttl = timedelta(days=days) if days else None
    return await with_runtime(
        settings,
        lambda runtime: runtime.businesses.issue_token(waba_id, scopes, label="cli", ttl=ttl),
    )


async def _revoke(settings: Settings, token: str) -> None:
    await with_runtime(settings, lambda runtime: runtime.businesses.revoke_token(token))


async def _create(settings: Settings, name: str, phone: str) -> Provisioned:
    async def create(runtime: Runtime) -> Provisioned:
        from tidings.app import create_app

        create_app(runtime)  # gives the API device an in-process route to the core
        e164 = await runtime.businesses.check_available(phone)
        async with runtime.database.unit_of_work() as uow:
            code = (await runtime.accounts.invite(uow, e164)).code
        phone_number_id = graph_id()
        await runtime.api_devices.register(phone_number_id, e164, code, name)
        return await runtime.businesses.create(name, e164, phone_number_id=phone_number_id)

    return await with_runtime(settings, create)


async def _webhook(settings: Settings, phone_number_id: str, url: str, verify_token: str) -> None:
    async def point(runtime: Runtime) -> None:
        phone = await runtime.businesses.phone_by_number_id(phone_number_id)
        # Meta delivers nothing for a WABA no app subscribes to; the CLI does both steps.
        await runtime.webhooks.subscribe_app(phone.waba_id)
        await runtime.webhooks.set_phone_override(
            phone.phone_number_id, phone.waba_id, url, verify_token
        )

    await with_runtime(settings, point)
