"""Why a send is refused: one `Reason` per broken rule, machine-readable.

Every rule names itself (`Rule`), carries the Cloud API error code Meta would answer with
(`MetaCode`), a human sentence, whether Meta reports it synchronously (an HTTP error) or
asynchronously (a `failed` status webhook), and, when waiting helps, how long to wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Rule(StrEnum):
    """The name of each rule, as it appears in reasons and documentation."""

    BLOCK = "block"
    TEMPLATE = "template"
    WINDOW = "window"
    CONSENT = "consent"
    CAP = "cap"
    TIER = "tier"
    THROUGHPUT = "throughput"
    PAIR_RATE = "pair_rate"


class MetaCode(IntEnum):
    """The Cloud API error codes the policy core refuses with (a subset of Meta's)."""

    USER_BLOCKED = 130403  # the business blocked this user
    THROUGHPUT = 130429  # rate limit hit: the number's throughput
    UNDELIVERABLE = 131026  # the customer blocked the business (reported as undeliverable)
    REENGAGEMENT = 131047  # free-form outside the customer service window
    SPAM_RATE_LIMIT = 131048  # messaging limit (tier) exhausted
    ECOSYSTEM_ENGAGEMENT = 131049  # per-customer marketing cap / marketing not delivered here
    MARKETING_OPT_OUT = 131050  # the customer stopped marketing messages
    PAIR_RATE_LIMIT = 131056  # (business, consumer) pair rate limit
    TEMPLATE_PAUSED = 132015
    TEMPLATE_DISABLED = 132016


class Reporting(StrEnum):
    """How Meta surfaces the refusal: HTTP error now, or a `failed` status webhook later."""

    SYNC = "sync"
    ASYNC = "async"


# Meta's titles for the codes above (the "(#code) <title>" part of an error message).
TITLES: dict[MetaCode, str] = {
    MetaCode.USER_BLOCKED: "Business has blocked the user",
    MetaCode.THROUGHPUT: "Rate limit hit",
    MetaCode.UNDELIVERABLE: "Message undeliverable",
    MetaCode.REENGAGEMENT: "Re-engagement message",
    MetaCode.SPAM_RATE_LIMIT: "Spam rate limit hit",
    MetaCode.ECOSYSTEM_ENGAGEMENT: (
        "This message was not delivered to maintain healthy ecosystem engagement."
    ),
    MetaCode.MARKETING_OPT_OUT: (
        "Unable to deliver the message. This recipient has chosen to stop receiving "
        "marketing messages on WhatsApp from your business."
    ),
    MetaCode.PAIR_RATE_LIMIT: "(Business, Consumer) pair rate limit hit",
    MetaCode.TEMPLATE_PAUSED: "Template is Paused",
    MetaCode.TEMPLATE_DISABLED: "Template is Disabled",
}

# Codes Meta reports in a `failed` status webhook rather than in the HTTP response.
ASYNC_CODES: frozenset[MetaCode] = frozenset(
    {
        MetaCode.UNDELIVERABLE,
        MetaCode.REENGAGEMENT,
        MetaCode.ECOSYSTEM_ENGAGEMENT,
        MetaCode.MARKETING_OPT_OUT,
    }
)


@dataclass(frozen=True)
class Reason:
    """One broken rule.

    `retry_after` is in seconds: None means waiting alone will not help (the customer must
    write first, opt back in, unblock...). `details` is the sentence for `error_data.details`.
    """

    rule: Rule
    code: MetaCode
    details: str
    retry_after: float | None = None

    @property
    def title(self) -> str:
        return TITLES[self.code]

    @property
    def reporting(self) -> Reporting:
        return Reporting.ASYNC if self.code in ASYNC_CODES else Reporting.SYNC

    @property
    def retryable(self) -> bool:
        return self.retry_after is not None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, for preflight answers and logs."""
        return {
            "rule": str(self.rule),
            "code": int(self.code),
            "title": self.title,
            "details": self.details,
            "reporting": str(self.reporting),
            "retry_after": self.retry_after,
        }


def reason(rule: Rule, code: MetaCode, details: str, retry_after: float | None = None) -> Reason:
    """Build a Reason, clamping `retry_after` to be non-negative."""
    return Reason(rule, code, details, None if retry_after is None else max(0.0, retry_after))
