"""`tidings business costs`: what a business's delivered messages cost, per day and category."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from rich.table import Table

from tidings.billing.service import CostLine
from tidings.cli.runner import with_runtime
from tidings.config import Settings
from tidings.errors import NotFound, ValidationFailed
from tidings.runtime import Runtime


@dataclass(frozen=True)
class CostReport:
    waba_id: str
    first_day: date
    last_day: date
    lines: list[CostLine]

    @property
    def total(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal("0"))

    @property
    def currencies(self) -> list[str]:
        return sorted({line.currency for line in self.lines})


def parse_day(text: str | None, default: date, name: str) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{name} must be a day like 2026-11-25, not {text!r}") from None


async def cost_report(
    settings: Settings, waba_id: str, start: str | None, end: str | None
) -> CostReport:
    async def report(runtime: Runtime) -> CostReport:
        today = runtime.clock.now().astimezone(UTC).date()
        last = parse_day(end, today, "--end")
        first = parse_day(start, last - timedelta(days=6), "--start")
        if last < first:
            raise ValidationFailed("--end must not come before --start")
        phones = [p for p in await runtime.businesses.all_phones() if p.waba_id == waba_id]
        if not phones:
            raise NotFound(f"no business with WABA id {waba_id}")
        lines = await runtime.billing.daily_costs(
            phones[0].business_id,
            datetime.combine(first, time(), tzinfo=UTC),
            datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC),
        )
        return CostReport(waba_id, first, last, lines)

    return await with_runtime(settings, report)


def cost_table(report: CostReport) -> Table:
    table = Table(
        title=f"Costs of WABA {report.waba_id}, {report.first_day} to {report.last_day} (UTC)"
    )
    for column, justify in (
        ("day", "left"),
        ("category", "left"),
        ("type", "left"),
        ("delivered", "right"),
        ("cost", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for line in report.lines:
        table.add_row(
            line.day.isoformat(),
            line.pricing_category,
            line.pricing_type,
            str(line.volume),
            f"{line.cost:f} {line.currency}",
        )
    currency = " ".join(report.currencies)
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        str(sum(line.volume for line in report.lines)),
        f"{report.total:f} {currency}".strip(),
    )
    return table


def cost_json(report: CostReport) -> dict[str, object]:
    return {
        "waba_id": report.waba_id,
        "start": report.first_day.isoformat(),
        "end": report.last_day.isoformat(),
        "data": [
            {
                "day": line.day.isoformat(),
                "pricing_category": line.pricing_category,
                "pricing_type": line.pricing_type,
                "volume": line.volume,
                "cost": str(line.cost),
                "currency": line.currency,
            }
            for line in report.lines
        ],
        "total": str(report.total),
    }
