"""Every table, for Alembic and for tests: import each domain's models here."""

from __future__ import annotations

import tidings.accounts.models
import tidings.admin.models
import tidings.attachments.models
import tidings.billing.models
import tidings.business.models
import tidings.devices.models
import tidings.limits.models
import tidings.mailbox.models
import tidings.signals.models
import tidings.templates.models
import tidings.webhooks.models
from tidings.db import counters, ratelimit
from tidings.db.base import Base

__all__ = ["metadata"]

_MODELS = (
    tidings.accounts.models,
    tidings.attachments.models,
    tidings.billing.models,
    tidings.business.models,
    tidings.devices.models,
    tidings.limits.models,
    tidings.mailbox.models,
    tidings.signals.models,
    tidings.templates.models,
    tidings.webhooks.models,
    ratelimit,
    counters,
)
metadata = Base.metadata
