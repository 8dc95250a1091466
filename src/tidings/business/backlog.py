"""Admission control: a number whose accepted messages wait for delivery beyond a bound is
refused new sends with 130429 (Meta's "Rate limit hit") and a `Retry-After`, instead of
queueing them behind a backlog that only grows.

Meta's throughput limit caps how fast a number may send; this caps how far the platform may
fall behind delivering what it accepted, which on a given machine is the same promise: a send
answered 200 is delivered soon. Under overload (the sustained benchmark offers 1,000 sends/s
to a node that delivers about 400) the answer is a prompt refusal a client retries, not a 200
forty seconds late for a message minutes from its customer.

The count is read from the database (messages accepted and not yet sent, any node's), at
most once per `recount` per number on each node; sends this node accepts in between are added
to it, so a burst cannot overshoot the bound by more than the other nodes' share of a second.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tidings.business.policy_gate import PolicyRefused
from tidings.business.repository import BusinessRepository
from tidings.db.uow import Database
from tidings.kit.clock import Clock
from tidings.policy.reasons import MetaCode, Rule, reason


class OutboundBacklog:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        limit: int,
        recount: timedelta = timedelta(seconds=1),
    ) -> None:
        self._database = database
        self._clock = clock
        self.limit = limit  # 0: no bound
        self._recount = recount
        self._counts: dict[int, tuple[int, datetime]] = {}  # phone pk -> (waiting, counted at)

    async def admit(self, phone_pk: int) -> None:
        """Raise `PolicyRefused` (130429) while the number's backlog is at the bound."""
        if self.limit <= 0:
            return
        now = self._clock.now()
        known = self._counts.get(phone_pk)
        if known is None or now - known[1] >= self._recount:
            async with self._database.read_only() as uow:
                waiting = await BusinessRepository(uow.session).count_pending_outbound(phone_pk)
            known = self._counts[phone_pk] = (waiting, now)
        waiting, counted_at = known
        if waiting >= self.limit:
            retry_after = (counted_at + self._recount - now).total_seconds()
            raise PolicyRefused(
                reason(
                    Rule.THROUGHPUT,
                    MetaCode.THROUGHPUT,
                    f"Cloud API message throughput has been reached: {waiting:,} messages of"
                    f" this number are waiting for delivery (at most {self.limit:,}). Retry"
                    " after the time in the Retry-After header.",
                    retry_after,
                )
            )

    def accepted(self, phone_pk: int) -> None:
        """Count a send this node accepted since the last count."""
        known = self._counts.get(phone_pk)
        if known is not None:
            self._counts[phone_pk] = (known[0] + 1, known[1])
