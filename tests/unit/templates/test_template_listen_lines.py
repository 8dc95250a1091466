"""`tidings listen` shows a template message as lines a person reads (pure formatting)."""

from __future__ import annotations

from tidings.cli.client import template_lines


def test_media_location_and_code_buttons_read_plainly() -> None:
    image = {
        "name": "receipt_image",
        "category": "UTILITY",
        "header": {"format": "IMAGE", "image": {"attachment": {"mime_type": "image/png"}}},
        "body": {"text": "Your receipt.\nThanks!"},
    }
    assert template_lines(image) == [
        "(template receipt_image, utility)",
        "  [image: image/png]",
        "  Your receipt.",
        "  Thanks!",
    ]
    place = {
        "name": "pickup_point",
        "category": "UTILITY",
        "header": {
            "format": "LOCATION",
            "location": {"latitude": 48.85, "longitude": 2.35, "name": "Pickup 4"},
        },
        "body": {"text": "Waiting for you."},
        "buttons": [
            {"type": "COPY_CODE", "text": "Copy offer code", "code": "SAVE10"},
            {"type": "OTP", "text": "Copy code", "code": "123456"},
            {"type": "FLOW", "text": "Book"},
        ],
    }
    assert template_lines(place)[1] == "  [location: Pickup 4 (48.85, 2.35)]"
    assert template_lines(place)[-1] == ("  [Copy offer code: SAVE10] [Copy code: 123456] [Book]")
    document = {
        "name": "invoice",
        "category": "UTILITY",
        "header": {"format": "DOCUMENT", "document": {"filename": "inv.pdf", "attachment": {}}},
        "body": {"text": "Attached."},
        "footer": {"text": "Acme"},
    }
    assert template_lines(document)[1:] == ["  [document: inv.pdf]", "  Attached.", "  -- Acme"]
