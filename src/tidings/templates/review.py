"""The automated template review: readable rules over a frozen draft. PURE.

Every rule has a name and yields `Finding`s, each with a human sentence and an outcome
(REFUSE, REJECT or RECATEGORIZE; see `findings.py`). The rules live in `rules_text.py` and
`rules_shape.py`.

`review()` runs every rule, then the category check (the classifier), and returns a `Verdict`.
The rule catalogue, with one passing and one failing case per rule, is in docs/templates.md
and tests/unit/templates/test_templates_review.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.templates.classifier import NaiveBayes, Prediction, draft_text, predict
from tidings.templates.definition import (
    APPROVED,
    AUTHENTICATION,
    MARKETING,
    PENDING,
    REJECTED,
    UTILITY,
    TemplateDraft,
)
from tidings.templates.findings import (
    RECATEGORIZE,
    REFUSE,
    REJECT,
    Finding,
    ReviewContext,
    Rule,
    reject,
)
from tidings.templates.rules_shape import SHAPE_RULES
from tidings.templates.rules_text import TEXT_RULES

__all__ = [
    "RECATEGORIZE",
    "REFUSE",
    "REJECT",
    "RULES",
    "Finding",
    "ReviewContext",
    "ReviewSettings",
    "Verdict",
    "review",
]

RULES: dict[str, Rule] = {**TEXT_RULES, **SHAPE_RULES}


@dataclass(frozen=True)
class ReviewSettings:
    # What happens to a UTILITY/AUTHENTICATION template that reads as MARKETING.
    miscategorized: str = "recategorize"  # "recategorize" | "reject"
    # "never": the automated verdict stands; "always": every template that passes waits for a
    # person; "uncertain": only those the classifier is unsure of, or that were re-categorized.
    human_review: str = "never"
    marketing_threshold: float = 0.6  # P(MARKETING) from which a UTILITY filing is marketing
    authentication_threshold: float = 0.9  # P(AUTH) from which a non-AUTH filing is rejected
    uncertain_below: float = 0.8


@dataclass(frozen=True)
class Verdict:
    status: str  # APPROVED | REJECTED | PENDING (a person reviews it)
    filed_category: str
    category: str
    reason: str  # Meta's rejection reason, or "NONE"
    findings: tuple[Finding, ...]
    prediction: Prediction | None
    needs_human: bool = False

    @property
    def refusal(self) -> Finding | None:
        return next((f for f in self.findings if f.outcome == REFUSE), None)

    @property
    def recategorized(self) -> bool:
        return self.category != self.filed_category

    def summary(self) -> str:
        if not self.findings:
            return "No problems found."
        return " ".join(f"[{f.rule}] {f.message}" for f in self.findings)


# -- the verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CategoryCheck:
    finding: Finding | None = None
    category: str = ""
    uncertain: bool = False


def check_category(
    draft: TemplateDraft, prediction: Prediction, settings: ReviewSettings
) -> _CategoryCheck:
    """Compare the filed category with what the text reads as."""
    filed = draft.category
    evidence = ", ".join(f"'{e}'" for e in prediction.evidence) or "its wording"
    uncertain = prediction.confidence < settings.uncertain_below
    if filed in (UTILITY, AUTHENTICATION):
        p_marketing = prediction.probability(MARKETING)
        if p_marketing >= settings.marketing_threshold:
            sentence = (
                f"Filed as {filed} but reads as promotional (P(marketing) = {p_marketing:.2f};"
                f" evidence: {evidence})."
            )
            if settings.miscategorized == "reject":
                return _CategoryCheck(
                    reject("category_check", "INCORRECT_CATEGORY", sentence), filed, uncertain
                )
            return _CategoryCheck(
                Finding("category_check", sentence + " Approved as MARKETING.", RECATEGORIZE),
                MARKETING,
                uncertain,
            )
    if filed != AUTHENTICATION:
        p_auth = prediction.probability(AUTHENTICATION)
        if p_auth >= settings.authentication_threshold:
            sentence = (
                f"Filed as {filed} but sends a one-time code (P(authentication) = {p_auth:.2f};"
                f" evidence: {evidence}): codes go in AUTHENTICATION templates."
            )
            return _CategoryCheck(
                reject("category_check", "INCORRECT_CATEGORY", sentence), filed, uncertain
            )
    return _CategoryCheck(None, filed, uncertain)


def review(
    draft: TemplateDraft,
    model: NaiveBayes,
    context: ReviewContext = ReviewContext(),
    settings: ReviewSettings = ReviewSettings(),
) -> Verdict:
    findings = [finding for check in RULES.values() for finding in check(draft, context)]
    if any(f.outcome == REFUSE for f in findings):
        return Verdict(
            REJECTED, draft.category, draft.category, "INVALID_FORMAT", tuple(findings), None
        )
    text, buttons = draft_text(draft)
    prediction = predict(model, text, buttons)
    category = check_category(draft, prediction, settings)
    if category.finding is not None:
        findings.append(category.finding)
    final = category.category or draft.category
    rejection = next((f for f in findings if f.outcome == REJECT), None)
    if rejection is not None:
        return Verdict(
            REJECTED,
            draft.category,
            draft.category,
            rejection.reason or "NONE",
            tuple(findings),
            prediction,
        )
    needs_human = settings.human_review == "always" or (
        settings.human_review == "uncertain" and (category.uncertain or final != draft.category)
    )
    status = PENDING if needs_human else APPROVED
    return Verdict(status, draft.category, final, "NONE", tuple(findings), prediction, needs_human)
