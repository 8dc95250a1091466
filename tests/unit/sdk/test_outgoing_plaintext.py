"""The send path writes each device's plaintext from a template: it must be byte for byte what
the `Plaintext` model writes, whatever the ids, phones and content hold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tidings.protocol.e2e import Address, Plaintext
from tidings.sdk.outgoing import PlaintextWriter

SENDER = Address(phone="+15550100001", device_id=3)
CONTENTS = [
    {"type": "text", "text": {"body": "x" * 160, "preview_url": False}},
    {"type": "text", "text": 'quote " backslash \\ newline \n tab \t del \x7f é 漢 🙂'},
    {"n": [1, 2.5, None, True, {"deep": []}]},
    {},
]


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("kind", ["message", "typing"])
def test_the_template_writes_what_the_model_writes(content, kind) -> None:
    writer = PlaintextWriter('wamid."odd\\id', 1_700_000_000_123, SENDER, "+15550100002")
    for phone, device_id in [("+15550100002", 1), ("+15550100002", 7), ("+15550100001", 2)]:
        expected = Plaintext(
            id='wamid."odd\\id',
            ts=1_700_000_000_123,
            sender=SENDER,
            recipient=Address(phone=phone, device_id=device_id),
            to="+15550100002",
            kind=kind,
            content=content,
        ).model_dump_json()
        written = writer.write(phone, device_id, kind, content)
        assert written == expected.encode()
        assert Plaintext.model_validate_json(written).recipient.device_id == device_id


def test_the_template_validates_what_the_model_validates() -> None:
    writer = PlaintextWriter("wamid.x", 1, SENDER, "+15550100002")
    with pytest.raises(ValidationError):
        writer.write("+15550100002", 1, "shout", {})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        writer.write("+15550100002", 1, "message", {1: "not a str key"})  # type: ignore[dict-item]


def test_content_built_or_changed_per_device_is_written_as_it_is_then() -> None:
    writer = PlaintextWriter("wamid.x", 1, SENDER, "+15550100002")
    content: dict[str, object] = {"n": 1}
    first = writer.write("+15550100002", 1, "message", content)  # type: ignore[arg-type]
    content["n"] = 2
    second = writer.write("+15550100002", 2, "message", content)  # type: ignore[arg-type]
    assert Plaintext.model_validate_json(first).content == {"n": 1}
    assert Plaintext.model_validate_json(second).content == {"n": 2}
