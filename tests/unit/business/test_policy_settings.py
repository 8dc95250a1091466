"""The operator's `[policy]` settings become the policy core's `Limits`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from tidings.config import load_settings
from tidings.runtime import policy_limits


def test_a_policy_section_in_tidings_toml(tmp_path, monkeypatch) -> None:
    (tmp_path / "tidings.toml").write_text(
        "[policy]\n"
        "customer_service_window_hours = 12\n"
        "marketing_cap = 2\n"
        "marketing_cap_period_hours = 48\n"
        "marketing_cap_exempt_in_window = false\n"
        'marketing_blocked_countries = ["us", "CA"]\n'
    )
    monkeypatch.setenv("TIDINGS_POLICY__FREE_ENTRY_POINT_HOURS", "36")
    limits = policy_limits(load_settings(tmp_path).policy)
    assert limits.windows.customer_service == timedelta(hours=12)
    assert limits.windows.free_entry_point == timedelta(hours=36)
    assert limits.marketing_cap is not None
    assert (limits.marketing_cap.count, limits.marketing_cap.period) == (2, timedelta(hours=48))
    assert limits.marketing_cap.exempt_in_window is False
    assert limits.marketing_blocked_countries == {"US", "CA"}


def test_defaults_and_turning_the_cap_off(tmp_path) -> None:
    limits = policy_limits(load_settings(tmp_path).policy)
    assert limits.windows.customer_service == timedelta(hours=24)
    assert limits.marketing_cap is not None and limits.marketing_cap.count == 4
    (tmp_path / "tidings.toml").write_text("[policy]\nmarketing_cap_enabled = false\n")
    assert policy_limits(load_settings(tmp_path).policy).marketing_cap is None


@pytest.mark.parametrize(
    "line", ["marketing_cap = -1", "customer_service_window_hours = 0", 'marketing_cap = "x"']
)
def test_bad_policy_settings_are_refused(tmp_path, line) -> None:
    (tmp_path / "tidings.toml").write_text(f"[policy]\n{line}\n")
    with pytest.raises(ValidationError):
        load_settings(tmp_path)
