"""Per-template quality and pausing (issue 4 §4), from the customer signals the signals domain
records (deliveries, reads, blocks, reports, "Stop promotions" and STOP keywords), each charged
to the template the customer received.

- After every negative signal charged to a template, `on_signal` rates it (GREEN / YELLOW /
  RED / UNKNOWN, policy/quality.py) and, when the rating changed, stores it and queues a
  `message_template_quality_update` webhook.
- A RED **marketing** template that is APPROVED is paused for 3 hours the first time, 6 hours
  the second, and disabled the third (`policy.quality.template_pause`), each with a
  `message_template_status_update` (event PAUSED or DISABLED, `other_info.title` FIRST_PAUSE /
  SECOND_PAUSE / DISABLED). Sending it meanwhile fails with 132015 / 132016.
- `unpause_due` (the business worker's housekeeping) puts paused templates whose pause is
  over back to APPROVED with event APPROVED and `other_info.title` UNPAUSE. If the template is
  still RED, the next negative signal pauses it again, for longer.

The rows are the templates domain's own (`message_templates.quality_score`, `pause_count`,
`paused_until`, `status`); this module changes only those columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from tidings.business.messaging import WebhookSink
from tidings.business.service import PhoneInfo
from tidings.db.uow import Database, UnitOfWork
from tidings.kit.clock import Clock
from tidings.policy.quality import (
    Quality,
    QualityParams,
    TemplateAction,
    template_pause,
    template_quality,
)
from tidings.signals.quality import as_signals
from tidings.signals.repository import SignalsRepository
from tidings.templates.definition import APPROVED, DISABLED, PAUSED
from tidings.templates.models import MessageTemplate
from tidings.templates.views import status_update_value

STATUS_FIELD = "message_template_status_update"
QUALITY_FIELD = "message_template_quality_update"
_DESCRIPTIONS = {
    "FIRST_PAUSE": "Your message template has been paused for 3 hours due to low quality.",
    "SECOND_PAUSE": "Your message template has been paused for 6 hours due to low quality.",
    "DISABLED": "Your message template has been disabled due to continued low quality.",
    "UNPAUSE": "Your message template is available for sending again.",
}


class TemplateQualityService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        webhooks: WebhookSink,
        params: QualityParams = QualityParams(),
    ) -> None:
        self._database = database
        self._clock = clock
        self._webhooks = webhooks
        self._params = params

    async def on_signal(self, uow: UnitOfWork, phone: PhoneInfo, template_id: str | None) -> None:
        """A signal hook of the signals domain (runs in the signal's unit of work)."""
        if template_id is None:
            return
        row = await uow.session.scalar(
            select(MessageTemplate)
            .where(MessageTemplate.template_id == template_id)
            .with_for_update()
        )
        if row is None or row.deleted_at is not None:
            return
        now = self._clock.now()
        totals = await SignalsRepository(uow.session).signal_totals(
            now - self._params.lookback, template_id=template_id
        )
        rating = template_quality(as_signals(totals), now, self._params)
        if str(rating) != row.quality_score:
            previous = row.quality_score
            row.quality_score, row.quality_updated_at = str(rating), now
            await self._emit(uow, row, QUALITY_FIELD, quality_update_value(row, previous))
        if rating is Quality.RED and row.category == "MARKETING" and row.status == APPROVED:
            await self._pause(uow, row, now)

    async def _pause(self, uow: UnitOfWork, row: MessageTemplate, now: datetime) -> None:
        pause = template_pause(row.pause_count, now)
        row.updated_at = now
        if pause.action is TemplateAction.PAUSE:
            row.status, row.paused_until = PAUSED, pause.until
            row.pause_count += 1
            value = status_update_value(row, PAUSED)
        else:
            row.status, row.paused_until = DISABLED, None
            value = status_update_value(row, DISABLED)
            value["disable_info"] = {"disable_date": int(now.timestamp())}
        value["other_info"] = {"title": pause.title, "description": _DESCRIPTIONS[pause.title]}
        await self._emit(uow, row, STATUS_FIELD, value)

    async def unpause_due(self) -> int:
        """Housekeeping: paused templates whose pause is over go back to APPROVED."""
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            rows = (
                await uow.session.scalars(
                    select(MessageTemplate)
                    .where(
                        MessageTemplate.status == PAUSED,
                        MessageTemplate.paused_until.is_not(None),
                        MessageTemplate.paused_until <= now,
                        MessageTemplate.deleted_at.is_(None),
                    )
                    .with_for_update()
                )
            ).all()
            for row in rows:
                row.status, row.paused_until, row.updated_at = APPROVED, None, now
                value = status_update_value(row, APPROVED)
                value["other_info"] = {"title": "UNPAUSE", "description": _DESCRIPTIONS["UNPAUSE"]}
                await self._emit(uow, row, STATUS_FIELD, value)
            return len(rows)

    async def _emit(
        self, uow: UnitOfWork, row: MessageTemplate, field: str, value: dict[str, Any]
    ) -> None:
        await self._webhooks.enqueue(
            uow, waba_id=row.waba_id, phone_number_id=None, field=field, value=value
        )


def quality_update_value(row: MessageTemplate, previous: str) -> dict[str, Any]:
    """A `message_template_quality_update` value (reference/cloud-api.md §4)."""
    return {
        "previous_quality_score": previous,
        "new_quality_score": row.quality_score,
        "message_template_id": int(row.template_id),
        "message_template_name": row.name,
        "message_template_language": row.language,
    }
