"""The template a preflight question names (signals/routes.py reaches it through
`app.state.template_lookup`, as the templates domain sits above the signals domain).

Unlike a send, a paused or disabled template is not an error here: the policy gate lists it
as a reason (132015 with the end of the pause, or 132016) beside every other reason."""

from __future__ import annotations

from tidings.business.policy_gate import TemplateUse
from tidings.business_api.graph_errors import GraphError
from tidings.templates.definition import APPROVED, DISABLED, PAUSED, PENDING
from tidings.templates.desk import TemplateDesk
from tidings.templates.sending import template_use

_KNOWN = (APPROVED, PENDING, PAUSED, DISABLED)


class TemplateLookup:
    def __init__(self, desk: TemplateDesk) -> None:
        self._desk = desk

    async def __call__(self, waba_id: str, name: str, language: str | None) -> TemplateUse:
        found = await self._desk.approved_for_sending(waba_id, name, language)
        if found is None or found.version is None or found.status not in _KNOWN:
            where = language if language is not None else "any single language"
            raise GraphError(132001, f"template name ({name}) does not exist (approved) in {where}")
        return template_use(found)
