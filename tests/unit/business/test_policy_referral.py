"""The entry point a customer's first message carries becomes the webhook's `referral`."""

from __future__ import annotations

import pytest

from tidings.business.inbound import referral_of, to_cloud_message


def cloud(content: dict) -> dict:
    return to_cloud_message(
        content, wamid="wamid.1", sender="+15550100001", ts=1, business="15550109999",
        quoted_wamid=None,
    )  # fmt: skip


def test_a_link_referral_is_reported_with_known_fields_only() -> None:
    message = cloud(
        {
            "type": "text",
            "text": {"body": "Hi"},
            "referral": {
                "source_type": "link",
                "source_id": "spring-sale",
                "source_url": "https://acme.example/chat",
                "tracking": "dropped",
                "headline": 42,
            },
        }
    )
    assert message["referral"] == {
        "source_type": "link",
        "source_id": "spring-sale",
        "source_url": "https://acme.example/chat",
    }
    assert message["text"] == {"body": "Hi"}


@pytest.mark.parametrize(
    "raw", [None, "qr", {}, {"source_type": "billboard"}, {"source_type": ["qr"]}]
)
def test_no_referral_without_a_known_source_type(raw) -> None:
    content = {"type": "text", "text": {"body": "Hi"}, "referral": raw}
    assert referral_of(content) is None
    assert "referral" not in cloud(content)
