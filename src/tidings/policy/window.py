"""The customer service window and free entry point windows.

A customer's message opens (or renews) a 24-hour customer service window (CSW) per
(business phone number, customer). Inside it any message may be sent; outside it only
templates. The window is half-open: a message at T keeps it open until T + 24 h exclusive, so
23:59:59 after the customer's last message is inside and 24:00:00 is outside.

A free entry point (FEP) window: a customer who starts the conversation from the business's
link, QR code or ad, and whom the business answers within 24 hours, gets a 72-hour window
opened by that first answer, in which every message is free. It changes pricing only: once
the CSW has closed, free-form messages are still refused (templates sent within the FEP window
remain free).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.policy.categories import Category
from tidings.policy.reasons import MetaCode, Reason, Rule, reason

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
FREE_ENTRY_POINT_WINDOW = timedelta(hours=72)
ENTRY_POINT_REPLY_WITHIN = timedelta(hours=24)


@dataclass(frozen=True)
class WindowLengths:
    customer_service: timedelta = CUSTOMER_SERVICE_WINDOW
    free_entry_point: timedelta = FREE_ENTRY_POINT_WINDOW
    entry_point_reply_within: timedelta = ENTRY_POINT_REPLY_WITHIN


@dataclass(frozen=True)
class EntryPoint:
    """A conversation the customer started from the business's link, QR code or ad.

    `started_at` is the customer's first message through the entry point; `replied_at` is the
    business's first answer to it (None while unanswered), which opens the 72-hour window.
    """

    started_at: datetime
    replied_at: datetime | None = None


@dataclass(frozen=True)
class WindowState:
    """Both windows as seen at `at`. An expiry is exclusive; None means no such window."""

    at: datetime
    csw_expires_at: datetime | None
    fep_expires_at: datetime | None
    # True when this very send would be the business's first answer to an entry point and so
    # opens the FEP window (which then expires at `fep_expires_at`).
    fep_opens_now: bool = False

    @property
    def csw_open(self) -> bool:
        return self.csw_expires_at is not None and self.at < self.csw_expires_at

    @property
    def fep_open(self) -> bool:
        return self.fep_expires_at is not None and self.at < self.fep_expires_at

    def csw_remaining(self) -> timedelta:
        if self.csw_expires_at is None or not self.csw_open:
            return timedelta(0)
        return self.csw_expires_at - self.at


def renew(last_inbound_at: datetime | None, inbound_at: datetime) -> datetime:
    """The last-inbound time after a customer message at `inbound_at` (never moves back)."""
    if last_inbound_at is None:
        return inbound_at
    return max(last_inbound_at, inbound_at)


def csw_expires_at(
    last_inbound_at: datetime | None, length: timedelta = CUSTOMER_SERVICE_WINDOW
) -> datetime | None:
    return None if last_inbound_at is None else last_inbound_at + length


def fep_expires_at(
    entry_point: EntryPoint | None, now: datetime, lengths: WindowLengths = WindowLengths()
) -> tuple[datetime | None, bool]:
    """When the FEP window expires, and whether a send at `now` is the one that opens it."""
    if entry_point is None:
        return None, False
    deadline = entry_point.started_at + lengths.entry_point_reply_within
    if entry_point.replied_at is None:
        if entry_point.started_at <= now < deadline:
            return now + lengths.free_entry_point, True
        return None, False
    if entry_point.replied_at < deadline:
        return entry_point.replied_at + lengths.free_entry_point, False
    return None, False


def window_state(
    last_inbound_at: datetime | None,
    entry_point: EntryPoint | None,
    now: datetime,
    lengths: WindowLengths = WindowLengths(),
) -> WindowState:
    fep_expiry, opens_now = fep_expires_at(entry_point, now, lengths)
    return WindowState(
        at=now,
        csw_expires_at=csw_expires_at(last_inbound_at, lengths.customer_service),
        fep_expires_at=fep_expiry,
        fep_opens_now=opens_now,
    )


def check_window(category: Category, state: WindowState) -> Reason | None:
    """Free-form (SERVICE) messages need an open customer service window: 131047 otherwise.

    Meta reports 131047 as a `failed` status webhook (the send itself is accepted); the
    reason's `reporting` says so and the service chooses how to surface it.
    """
    if category is not Category.SERVICE or state.csw_open:
        return None
    if state.csw_expires_at is None:
        details = "The customer has never messaged this number; only templates can be sent."
    else:
        details = (
            "Message failed to send because more than 24 hours have passed since the customer "
            "last replied to this number; only templates can be sent."
        )
    return reason(Rule.WINDOW, MetaCode.REENGAGEMENT, details)
