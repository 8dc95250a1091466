from __future__ import annotations

from datetime import timedelta

import pytest

from tidings.config import load_settings
from tidings.db.ratelimit import gcra
from tidings.kit.clock import FrozenClock
from tidings.kit.ids import b64decode, b64encode, hash_code, hash_token, random_token
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+15550100001", "+15550100001"),
        ("+1 (555) 010-0001", "+15550100001"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "12", "+1555", "hello", "+15559999999", "+" + "1" * 40])
def test_invalid_phone_numbers_raise_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as error:
        normalize_phone(raw)
    assert str(error.value)


def test_gcra_allows_a_burst_then_spaces_events() -> None:
    tat = None
    now = 1000.0
    for _ in range(5):
        verdict, tat = gcra(tat, now, limit=5, period=60)
        assert verdict.allowed
    verdict, same = gcra(tat, now, limit=5, period=60)
    assert not verdict.allowed and verdict.retry_after == pytest.approx(12)
    assert same == tat  # a denied event does not consume capacity
    verdict, _ = gcra(tat, now + 12, limit=5, period=60)
    assert verdict.allowed


def test_tokens_and_codes_are_hashed_and_scoped() -> None:
    token = random_token("tdv")
    assert token.startswith("tdv_") and len(token) > 40
    assert hash_token(token) != token and len(hash_token(token)) == 64
    assert hash_code(b"pepper", "+15550100001", "123456") != hash_code(
        b"pepper", "+15550100002", "123456"
    )
    assert hash_code(b"pepper", "+1", "123456") != hash_code(b"other", "+1", "123456")


def test_base64_accepts_unpadded_input() -> None:
    assert b64decode(b64encode(b"ab")) == b"ab"
    assert b64decode("YWI") == b"ab"
    with pytest.raises(ValueError):
        b64decode("!!")


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock()
    start = clock.now()
    assert clock.now() == start
    assert clock.advance(hours=25) - start == timedelta(hours=25)


def test_settings_load_file_then_environment_then_flags(tmp_path, monkeypatch) -> None:
    (tmp_path / "tidings.toml").write_text(
        '[server]\nport = 9000\nhost = "0.0.0.0"\n[limits]\nmax_companions = 2\n'
    )
    monkeypatch.setenv("TIDINGS_SERVER__PORT", "9100")
    settings = load_settings(tmp_path, server={"host": "127.0.0.2"})
    assert settings.server.port == 9100  # environment beats the file
    assert settings.server.host == "127.0.0.2"  # flags beat both
    assert settings.limits.max_companions == 2  # the file still counts
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
    # The pepper is generated once and kept.
    assert load_settings(tmp_path).secret_key == settings.secret_key
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
