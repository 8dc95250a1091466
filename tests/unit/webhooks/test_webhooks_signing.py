"""Webhook bytes, signatures, the retry schedule and target precedence (no database)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from tidings.webhooks.delivery import BACKOFF, RETRY_WINDOW, after_failure, backoff
from tidings.webhooks.repository import DEAD, PENDING, TargetRoute
from tidings.webhooks.service import resolve_targets
from tidings.webhooks.signing import encode_body, envelope, sign, signature_matches


def test_body_escapes_non_ascii_and_has_no_whitespace() -> None:
    body = encode_body(envelope("waba1", "messages", {"text": {"body": "café 👋"}}))
    assert body == (
        b'{"object":"whatsapp_business_account","entry":[{"id":"waba1","changes":'
        b'[{"value":{"text":{"body":"caf\\u00e9 \\ud83d\\udc4b"}},"field":"messages"}]}]}'
    )
    assert json.loads(body)["entry"][0]["changes"][0]["value"]["text"]["body"] == "café 👋"


def test_non_message_fields_carry_the_entry_time() -> None:
    document = envelope("waba1", "message_template_status_update", {"event": "APPROVED"}, 1700)
    assert document["entry"][0]["time"] == 1700


def test_signature_is_lowercase_hex_hmac_of_the_exact_bytes() -> None:
    body = b'{"a":"\\u00e9"}'
    expected = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert sign("app-secret", body) == f"sha256={expected}"
    assert signature_matches("app-secret", body, f"sha256={expected}")
    assert not signature_matches("app-secret", body + b" ", f"sha256={expected}")
    assert not signature_matches("other", body, f"sha256={expected}")
    assert not signature_matches("app-secret", body, None)


def test_backoff_grows_then_repeats_every_three_hours() -> None:
    assert [backoff(n) for n in range(1, 8)] == list(BACKOFF)
    assert backoff(50) == timedelta(hours=3)
    assert backoff(0) == BACKOFF[0]


def test_retries_stop_at_the_end_of_the_window() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    expires = created + RETRY_WINDOW
    assert after_failure(1, created, expires) == (PENDING, created + timedelta(seconds=10))
    near_end = expires - timedelta(minutes=30)
    assert after_failure(20, near_end, expires) == (PENDING, expires)  # one last try at the end
    assert after_failure(21, expires, expires) == (DEAD, expires)


def test_precedence_phone_then_waba_then_app() -> None:
    app_a = TargetRoute(None, None, "https://a.example/app")
    app_b = TargetRoute(None, None, "https://b.example/app")
    assert resolve_targets([app_a]) == ["https://a.example/app"]
    assert resolve_targets([app_a._replace(waba_override="https://w")]) == ["https://w"]
    both = app_a._replace(phone_override="https://p", waba_override="https://w")
    assert resolve_targets([both]) == ["https://p"]
    # Two apps at one URL share a delivery.
    phone = "https://p"
    routes = [app_a._replace(phone_override=phone), app_b._replace(phone_override=phone)]
    assert resolve_targets(routes) == ["https://p"]
    assert resolve_targets([app_a, app_b]) == ["https://a.example/app", "https://b.example/app"]
    assert resolve_targets([]) == []
