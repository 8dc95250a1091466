"""`type: template` on the messages endpoint: find the approved version, check the send against
it, and hand back the rendered content and the `TemplateUse` the send records.

The send route (business_api/routes.py) sits below this domain, so it reaches
`prepare_template_send` through `app.state.template_sending` (wired by app.py). Every refusal
is a synchronous Graph error and nothing is stored:

- 132001 no live template of that name in that language, or none approved yet
- 132015 paused, 132016 disabled (Meta answers these at once, uncharged)
- 132000 / 132005 / 132007 / 132012 from rendering (render.py)
- 131053 a media header naming media this number cannot send
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request

from tidings.business.policy_gate import TemplateUse
from tidings.business.service import PhoneInfo
from tidings.business_api.graph_errors import GraphError
from tidings.business_api.media_routes import check_sendable_media
from tidings.policy.categories import Category
from tidings.templates.definition import APPROVED, DISABLED, PAUSED, PENDING
from tidings.templates.desk import TemplateDesk
from tidings.templates.render import (
    ApprovedVersion,
    TemplateSendRefused,
    media_reference,
    render,
)
from tidings.templates.views import SendableTemplate

# An edit in review leaves the template PENDING; its last approved version still sends.
_SENDABLE = (APPROVED, PENDING)


def _not_found(name: str, language: str | None) -> GraphError:
    where = language if language is not None else "any single language"
    return GraphError(132001, f"template name ({name}) does not exist in {where}")


def check_sendable(
    found: SendableTemplate | None, name: str, language: str | None, now: datetime
) -> None:
    """Refuse a send of `found` the way Meta does, or return (it may be sent).

    A pause whose `paused_until` has passed no longer holds, even before anything has marked
    the template APPROVED again (the policy core reads a pause the same way)."""
    if found is None:
        raise _not_found(name, language)
    if found.status == DISABLED:
        raise GraphError(132016, f"template ({name}) in {found.language} is disabled.")
    paused = found.status == PAUSED
    if paused and (found.paused_until is None or now < found.paused_until):
        until = f" until {found.paused_until.isoformat()}" if found.paused_until else ""
        raise GraphError(132015, f"template ({name}) in {found.language} is paused{until}.")
    if (found.status not in _SENDABLE and not paused) or found.version is None:
        raise GraphError(
            132001,
            f"template name ({name}) does not exist in {found.language}"
            f" (its status is {found.status}; only approved templates can be sent)",
        )


def render_send(found: SendableTemplate, components: list[dict[str, Any]]) -> dict[str, Any]:
    approved = ApprovedVersion(
        name=found.name,
        language=found.language,
        category=found.category,
        parameter_format=found.parameter_format,
        components=found.components,
    )
    try:
        return render(approved, components)
    except TemplateSendRefused as refused:
        raise GraphError(refused.code, refused.details) from None


def template_use(found: SendableTemplate) -> TemplateUse:
    assert found.version is not None  # check_sendable refused the never-approved
    return TemplateUse(
        template_id=found.template_id,
        name=found.name,
        language=found.language,
        category=Category(found.category),
        status=found.status,
        version=found.version,
        paused_until=found.paused_until,
    )


async def prepare_template_send(
    request: Request, phone: PhoneInfo, payload: dict[str, Any]
) -> tuple[dict[str, Any], TemplateUse]:
    """The rendered `template` content for a validated send payload, and what it uses."""
    desk: TemplateDesk = request.app.state.template_desk
    name = str(payload["name"])
    language = (payload.get("language") or {}).get("code") or None
    found = await desk.approved_for_sending(phone.waba_id, name, language)
    check_sendable(found, name, language, desk.now())
    assert found is not None
    content = render_send(found, list(payload.get("components") or []))
    media = media_reference(content)
    if media is not None:
        await check_sendable_media(request, phone, media[0], dict(media[1]))
    return content, template_use(found)


__all__ = ["check_sendable", "prepare_template_send", "render_send", "template_use"]
