"""Quality rating, per phone number and per template, from customer signals.

Formula (all numbers in `QualityParams`):

- Only signals in the last 7 days count, (now - 7 d, now]; each is weighted by recency,
  w = 0.5 ** (age / half_life) with a half-life of 2 days (a block today weighs 1, one from
  2 days ago 0.5, from 6 days ago 0.125).
- D = Σ w·n over deliveries, R = Σ w·n over reads (capped at D),
  N = Σ w·n·severity over negative signals, severity block 1, report 3, opt-out 0.5,
  mute 0.1, archive 0.05.
- negative_rate = N / D, read_rate = R / D, and the score is
  adjusted = negative_rate * (1.5 - read_rate): read messages soften negatives (x0.5 when
  everything is read), unread ones harden them (x1.5 when nothing is).
- RED when adjusted ≥ 3 %, YELLOW when ≥ 1 %, GREEN otherwise.
- With fewer than 30 weighted deliveries there is not enough to judge: a phone number is GREEN
  (new numbers start high, as on Meta), a template UNKNOWN.

A RED template is paused for 3 hours the first time, 6 hours the second, then disabled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Quality(StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"
    UNKNOWN = "UNKNOWN"


class SignalKind(StrEnum):
    DELIVERED = "delivered"
    READ = "read"
    BLOCK = "block"
    REPORT = "report"
    OPT_OUT = "opt_out"
    MUTE = "mute"
    ARCHIVE = "archive"


@dataclass(frozen=True)
class Signal:
    """`count` signals of one kind at one time (services may pre-aggregate, e.g. per hour)."""

    kind: SignalKind
    at: datetime
    count: int = 1


@dataclass(frozen=True)
class QualityParams:
    lookback: timedelta = timedelta(days=7)
    half_life: timedelta = timedelta(days=2)
    block_severity: float = 1.0
    report_severity: float = 3.0
    opt_out_severity: float = 0.5
    mute_severity: float = 0.1
    archive_severity: float = 0.05
    yellow_at: float = 0.01
    red_at: float = 0.03
    min_deliveries: float = 30.0

    def severity(self, kind: SignalKind) -> float:
        return {
            SignalKind.BLOCK: self.block_severity,
            SignalKind.REPORT: self.report_severity,
            SignalKind.OPT_OUT: self.opt_out_severity,
            SignalKind.MUTE: self.mute_severity,
            SignalKind.ARCHIVE: self.archive_severity,
        }.get(kind, 0.0)


@dataclass(frozen=True)
class QualityScore:
    rating: Quality  # UNKNOWN when there were too few deliveries
    deliveries: float
    negative_rate: float
    read_rate: float
    adjusted: float


def recency_weight(age: timedelta, params: QualityParams = QualityParams()) -> float:
    """0.5 ** (age / half_life) inside the lookback, 0 outside it (and for future signals)."""
    if age < timedelta(0) or age >= params.lookback:
        return 0.0
    return float(0.5 ** (age / params.half_life))


def score(
    signals: Iterable[Signal], now: datetime, params: QualityParams = QualityParams()
) -> QualityScore:
    deliveries = reads = negatives = 0.0
    for signal in signals:
        weighted = recency_weight(now - signal.at, params) * signal.count
        if signal.kind is SignalKind.DELIVERED:
            deliveries += weighted
        elif signal.kind is SignalKind.READ:
            reads += weighted
        else:
            negatives += weighted * params.severity(signal.kind)
    if deliveries < params.min_deliveries or deliveries <= 0:
        return QualityScore(Quality.UNKNOWN, deliveries, 0.0, 0.0, 0.0)
    negative_rate = negatives / deliveries
    read_rate = min(reads, deliveries) / deliveries
    adjusted = negative_rate * (1.5 - read_rate)
    if adjusted >= params.red_at:
        rating = Quality.RED
    elif adjusted >= params.yellow_at:
        rating = Quality.YELLOW
    else:
        rating = Quality.GREEN
    return QualityScore(rating, deliveries, negative_rate, read_rate, adjusted)


def phone_quality(
    signals: Iterable[Signal], now: datetime, params: QualityParams = QualityParams()
) -> Quality:
    """GREEN / YELLOW / RED for a phone number (GREEN while there is too little data)."""
    rating = score(signals, now, params).rating
    return Quality.GREEN if rating is Quality.UNKNOWN else rating


def template_quality(
    signals: Iterable[Signal], now: datetime, params: QualityParams = QualityParams()
) -> Quality:
    """GREEN / YELLOW / RED / UNKNOWN for a template."""
    return score(signals, now, params).rating


def api_quality_rating(quality: Quality) -> str:
    """The phone number's `quality_rating` field (Meta says NA when it has no rating)."""
    return "NA" if quality is Quality.UNKNOWN else str(quality)


# --- template pausing -------------------------------------------------------------------------

PAUSE_DURATIONS: tuple[timedelta, ...] = (timedelta(hours=3), timedelta(hours=6))


class TemplateAction(StrEnum):
    PAUSE = "PAUSED"
    DISABLE = "DISABLED"


@dataclass(frozen=True)
class TemplatePause:
    action: TemplateAction
    title: str  # other_info.title of message_template_status_update
    until: datetime | None  # end of the pause; None when disabled


def template_pause(previous_pauses: int, now: datetime) -> TemplatePause:
    """What happens to a template that turned RED after `previous_pauses` earlier pauses."""
    if previous_pauses < len(PAUSE_DURATIONS):
        title = "FIRST_PAUSE" if previous_pauses == 0 else "SECOND_PAUSE"
        return TemplatePause(TemplateAction.PAUSE, title, now + PAUSE_DURATIONS[previous_pauses])
    return TemplatePause(TemplateAction.DISABLE, "DISABLED", None)
