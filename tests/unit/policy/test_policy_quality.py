"""Quality rating formula cases, recency weighting, template pausing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.policy.quality import (
    Quality,
    QualityParams,
    Signal,
    SignalKind,
    TemplateAction,
    api_quality_rating,
    phone_quality,
    recency_weight,
    score,
    template_pause,
    template_quality,
)

NOW = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
D = timedelta(days=1)
K = SignalKind


def sig(kind: SignalKind, count: int, days_ago: float = 0) -> Signal:
    return Signal(kind, NOW - timedelta(days=days_ago), count)


@pytest.mark.parametrize(
    ("age", "weight"),
    [
        (timedelta(0), 1.0),
        (D, 2**-0.5),
        (2 * D, 0.5),
        (4 * D, 0.25),
        (6 * D, 0.125),
        (7 * D - timedelta(seconds=1), 0.5**3.5),
        (7 * D, 0.0),
        (30 * D, 0.0),
        (-timedelta(seconds=1), 0.0),
    ],
)
def test_recency_weight(age: timedelta, weight: float) -> None:
    assert recency_weight(age) == pytest.approx(weight, rel=1e-4)


@pytest.mark.parametrize(
    ("signals", "rating"),
    [
        # 1,000 delivered, 60 % read
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600)], Quality.GREEN),
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 11)], Quality.GREEN),  # .0099
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 12)], Quality.YELLOW),  # .0108
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 33)], Quality.YELLOW),  # .0297
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 34)], Quality.RED),  # .0306
        # reports weigh 3 blocks
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.REPORT, 4)], Quality.YELLOW),
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.REPORT, 12)], Quality.RED),
        # opt-outs weigh half a block, mutes a tenth
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.OPT_OUT, 22)], Quality.GREEN),
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.OPT_OUT, 24)], Quality.YELLOW),
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.MUTE, 100)], Quality.GREEN),
        # reads soften, unread hardens: same 7 blocks
        ([sig(K.DELIVERED, 1000), sig(K.READ, 1000), sig(K.BLOCK, 7)], Quality.GREEN),
        ([sig(K.DELIVERED, 1000), sig(K.BLOCK, 7)], Quality.YELLOW),  # .0105
        ([sig(K.DELIVERED, 1000), sig(K.READ, 1000), sig(K.BLOCK, 19)], Quality.GREEN),  # .0095
        # recency: 50 blocks six days ago count an eighth
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 50, 6)], Quality.GREEN),
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 50)], Quality.RED),
        # older than 7 days: ignored
        ([sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 500, 7)], Quality.GREEN),
    ],
)
def test_phone_quality_cases(signals: list[Signal], rating: Quality) -> None:
    assert phone_quality(signals, NOW) is rating
    assert template_quality(signals, NOW) is rating


def test_score_components() -> None:
    result = score([sig(K.DELIVERED, 200), sig(K.READ, 100), sig(K.BLOCK, 2)], NOW)
    assert result.deliveries == pytest.approx(200)
    assert result.negative_rate == pytest.approx(0.01)
    assert result.read_rate == pytest.approx(0.5)
    assert result.adjusted == pytest.approx(0.01)
    assert result.rating is Quality.YELLOW  # exactly at the threshold


def test_reads_are_capped_at_deliveries() -> None:
    result = score([sig(K.DELIVERED, 100), sig(K.READ, 500)], NOW)
    assert result.read_rate == 1.0


def test_too_little_data() -> None:
    few = [sig(K.DELIVERED, 29), sig(K.BLOCK, 29)]
    assert phone_quality(few, NOW) is Quality.GREEN  # new numbers start high
    assert template_quality(few, NOW) is Quality.UNKNOWN
    assert template_quality([], NOW) is Quality.UNKNOWN
    # 40 delivered 2 days ago weigh 20: still too little
    assert template_quality([sig(K.DELIVERED, 40, 2)], NOW) is Quality.UNKNOWN


def test_thresholds_are_configurable() -> None:
    strict = QualityParams(yellow_at=0.001, red_at=0.005, min_deliveries=10)
    signals = [sig(K.DELIVERED, 1000), sig(K.READ, 600), sig(K.BLOCK, 3)]
    assert phone_quality(signals, NOW) is Quality.GREEN
    assert phone_quality(signals, NOW, strict) is Quality.YELLOW


def test_api_quality_rating() -> None:
    assert api_quality_rating(Quality.GREEN) == "GREEN"
    assert api_quality_rating(Quality.UNKNOWN) == "NA"


def test_template_pausing_ladder() -> None:
    first = template_pause(0, NOW)
    assert (first.action, first.title, first.until) == (
        TemplateAction.PAUSE,
        "FIRST_PAUSE",
        NOW + timedelta(hours=3),
    )
    second = template_pause(1, NOW)
    assert (second.title, second.until) == ("SECOND_PAUSE", NOW + timedelta(hours=6))
    third = template_pause(2, NOW)
    assert third.action is TemplateAction.DISABLE and third.until is None
