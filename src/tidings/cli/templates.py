"""`tidings templates review`: the operator's queue of templates waiting for a person.

    tidings templates review list [--waba-id ID] [--json]
    tidings templates review approve TEMPLATE_ID
    tidings templates review reject TEMPLATE_ID --reason "why" [--code SCAM]
    tidings templates review recategorize TEMPLATE_ID --category MARKETING

Each acts on the data folder (`--data`, `--db`) like `tidings admin invite`; decisions queue
their webhooks, which the running server delivers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from tidings.cli.runner import (
    DataOption,
    DbOption,
    JsonLinesOption,
    prepared,
    run,
    with_runtime,
)
from tidings.config import Settings
from tidings.templates.desk import REJECTION_REASONS, TemplateDesk
from tidings.templates.views import review_entry

out = Console(soft_wrap=True, highlight=False, markup=False)  # findings read "[rule] ..."
T = TypeVar("T")


async def with_desk(settings: Settings, action: Callable[[TemplateDesk], Awaitable[T]]) -> T:
    return await with_runtime(settings, lambda runtime: action(runtime.template_desk))


def _run(settings: Settings, action: Callable[[TemplateDesk], Awaitable[T]]) -> T:
    return run(with_desk(settings, action))


queue_entry = review_entry  # the admin API lists the same entries


def install(app: typer.Typer) -> None:
    templates = typer.Typer(help="Message templates of the Business API.", no_args_is_help=True)
    review = typer.Typer(help="The human review queue.", no_args_is_help=True)
    templates.add_typer(review, name="review")
    app.add_typer(templates, name="templates")

    @review.command("list")
    def list_queue(
        waba_id: Annotated[
            str | None, typer.Option("--waba-id", help="Only this business's templates.")
        ] = None,
        data: DataOption = None,
        db: DbOption = None,
        json_output: JsonLinesOption = False,
    ) -> None:
        """Templates waiting for a person, oldest first, with the automated findings."""
        views = _run(prepared(data, db), lambda desk: desk.queue(waba_id))
        if json_output:
            for view in views:
                print(json.dumps(queue_entry(view)))
            return
        if not views:
            out.print("No templates are waiting for review.")
            return
        for view in views:
            entry = queue_entry(view)
            body = next((c.get("text") for c in view.components if c.get("type") == "BODY"), "")
            out.print(
                f"{view.template_id}  {view.name} ({view.language})  waba {view.waba_id}\n"
                f"  filed {entry['filed_category']}, proposed {entry['proposed_category']}"
                f"  classifier {_probabilities(entry['classifier'])}\n  body: {body}"
            )
            for finding in entry["findings"]:
                out.print(f"  [{finding['rule']}] {finding['message']}")

    @review.command("approve")
    def approve(
        template_id: Annotated[str, typer.Argument(help="The template id.")],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Approve a template in its proposed category."""
        view = _run(prepared(data, db), lambda desk: desk.approve(template_id))
        out.print(f"Approved {view.name} ({view.language}) as {view.category}.")

    @review.command("reject")
    def reject(
        template_id: Annotated[str, typer.Argument(help="The template id.")],
        reason: Annotated[
            str, typer.Option("--reason", help="What the business must change (sent to it).")
        ],
        code: Annotated[
            str, typer.Option("--code", help=f"Meta's reason: {', '.join(REJECTION_REASONS)}.")
        ] = "NONE",
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Reject a template, telling the business why."""
        view = _run(
            prepared(data, db), lambda desk: desk.reject(template_id, reason, reason=code.upper())
        )
        out.print(f"Rejected {view.name} ({view.language}): {view.rejected_reason}.")

    @review.command("recategorize")
    def recategorize(
        template_id: Annotated[str, typer.Argument(help="The template id.")],
        category: Annotated[
            str, typer.Option("--category", help="MARKETING, UTILITY or AUTHENTICATION.")
        ],
        data: DataOption = None,
        db: DbOption = None,
    ) -> None:
        """Put a template in another category (a pending one stays in the queue)."""
        view = _run(prepared(data, db), lambda desk: desk.recategorize(template_id, category))
        out.print(f"{view.name} ({view.language}) is now {view.category} ({view.status}).")


def _probabilities(probabilities: dict[str, float]) -> str:
    return ", ".join(f"{label.lower()} {p:.2f}" for label, p in probabilities.items()) or "n/a"
