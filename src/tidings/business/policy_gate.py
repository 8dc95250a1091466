"""Policy at the send: gather the facts, let the pure core decide, record what a send uses.

The rules themselves live in `tidings.policy` (pure). This module is the seam between them and
the stores: each *fact source* knows one part of the world (the service window, consent, the
messaging-limit usage, the rate counters, ...). `PolicyGate.decide` asks every source for the
`SendFacts` fields it knows, inside the send's own unit of work, and evaluates them;
`PolicyGate.record` lets every source store what an allowed send consumed (counter state,
usage, charges), in the same transaction as the message row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.service import PhoneInfo
from tidings.errors import AppError
from tidings.policy.categories import Category
from tidings.policy.evaluate import Decision, Limits, SendFacts, evaluate
from tidings.policy.reasons import Reason, Reporting


@dataclass(frozen=True)
class TemplateUse:
    """The approved template version a send uses, as the template service resolved it."""

    template_id: str
    name: str
    language: str
    category: Category
    status: str  # APPROVED, PAUSED, DISABLED, ...
    version: int
    paused_until: datetime | None = None


@dataclass(frozen=True)
class SendContext:
    """One send being decided: who sends, to whom, with which template, at what time."""

    phone: PhoneInfo
    customer: str  # E.164
    template: TemplateUse | None
    now: datetime
    # The message's id once the send is accepted (None while only asking, as preflight does).
    wamid: str | None = None
    # Only asking (preflight): the decision's unit of work is rolled back, and a source that
    # keeps state outside the database (a Redis counter) must not change it.
    peek: bool = False


class PolicyRefused(AppError):
    """A send refused synchronously, as Meta answers it (throughput, pair rate, paused
    template, messaging limit...). `details["graph_code"]` carries Meta's code, so the Cloud
    API surface renders the Graph error with that code and title."""

    def __init__(self, refusal: Reason) -> None:
        details: dict[str, Any] = {"graph_code": int(refusal.code), "rule": str(refusal.rule)}
        if refusal.retry_after is not None:
            details["retry_after"] = max(1, round(refusal.retry_after))
        super().__init__(refusal.details, details=details)
        self.reason = refusal


def how_refused(decision: Decision) -> tuple[Reporting, Reason] | None:
    """How to surface a refused decision: any synchronous reason wins (Meta's edge rate-limits
    and checks the template before accepting a send); otherwise the first reason, reported
    the way Meta does, as a `failed` status webhook after the send is accepted. None when
    the send is allowed."""
    if decision.allowed or decision.primary is None:
        return None
    sync = decision.first(Reporting.SYNC)
    if sync is not None:
        return Reporting.SYNC, sync
    return Reporting.ASYNC, decision.primary


class FactSource(Protocol):
    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        """The `SendFacts` fields this source knows about `send`."""
        ...

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        """Store what an allowed send consumed (called only when `decision.allowed`)."""
        ...


class PolicyGate:
    def __init__(self, limits: Limits, sources: Sequence[FactSource] = ()) -> None:
        self.limits = limits
        self._sources = tuple(sources)

    def with_sources(self, *sources: FactSource) -> PolicyGate:
        return PolicyGate(self.limits, (*self._sources, *sources))

    async def facts(self, session: AsyncSession, send: SendContext) -> SendFacts:
        fields: dict[str, Any] = {"is_template": send.template is not None}
        if send.template is not None:
            fields["template_category"] = send.template.category
            fields["template_status"] = send.template.status
            fields["template_paused_until"] = send.template.paused_until
        for source in self._sources:
            fields.update(await source.gather(session, send))
        return SendFacts(**fields)

    async def decide(self, session: AsyncSession, send: SendContext) -> Decision:
        return evaluate(await self.facts(session, send), self.limits, send.now)

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        if not decision.allowed:
            return
        for source in self._sources:
            await source.record(session, send, decision)
