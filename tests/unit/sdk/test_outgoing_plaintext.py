"""The send path writes each device's plaintext from a template: it must be byte for byte what
the `Plaintext` model writes, whatever the ids, phones and content hold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tidings.protocol.e2e import Address, Plaintext
from tidings.sdk.outgoing import PlaintextWriter, SameForAll

SENDER = Address(phone="+15550100001", device_id=3)
CONTENTS = [
    {"type": "text", "text": {"body": "x" * 160, "preview_url": False}},
    {"type": "text", "text": 'quote " backslash \\ newline \n tab \t del \x7f é 漢 🙂'},
    {"n": [1, 2.5, None, True, {"deep": []}]},
    {},
]


def _per_device(kind, content):
    return lambda _phone, _device_id: (kind, content)


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("kind", ["message", "typing"])
@pytest.mark.parametrize("shared", ["per-device", "same-for-all", "same-for-all-unannounced"])
def test_the_template_writes_what_the_model_writes(content, kind, shared) -> None:
    per_device = shared == "per-device"
    content_for = _per_device(kind, content) if per_device else SameForAll(kind, content)
    announced = None if shared == "same-for-all-unannounced" else content_for
    writer = PlaintextWriter('wamid."odd\\id', 1_700_000_000_123, SENDER, "+15550100002", announced)
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
        written = writer.write_for(content_for, phone, device_id)
        assert written == expected.encode()
        assert writer.write(phone, device_id, kind, content) == written
        assert Plaintext.model_validate_json(written).recipient.device_id == device_id


def test_the_template_validates_what_the_model_validates() -> None:
    writer = PlaintextWriter("wamid.x", 1, SENDER, "+15550100002")
    with pytest.raises(ValidationError):
        writer.write("+15550100002", 1, "shout", {})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        writer.write("+15550100002", 1, "message", {1: "not a str key"})  # type: ignore[dict-item]
    odd = SameForAll("message", {1: "not a str key"})  # type: ignore[dict-item]
    shout = SameForAll("shout", {})  # type: ignore[arg-type]
    for content_for in (odd, shout):
        announced = PlaintextWriter("wamid.x", 1, SENDER, "+15550100002", content_for)
        with pytest.raises(ValidationError):
            announced.write_for(content_for, "+15550100002", 1)


def test_content_built_or_changed_per_device_is_written_as_it_is_then() -> None:
    writer = PlaintextWriter("wamid.x", 1, SENDER, "+15550100002")
    content: dict[str, object] = {"n": 1}
    first = writer.write("+15550100002", 1, "message", content)  # type: ignore[arg-type]
    content["n"] = 2
    second = writer.write("+15550100002", 2, "message", content)  # type: ignore[arg-type]
    assert Plaintext.model_validate_json(first).content == {"n": 1}
    assert Plaintext.model_validate_json(second).content == {"n": 2}


def test_content_the_same_for_all_is_written_for_each_message_as_it_is_then() -> None:
    content: dict[str, object] = {"n": 1}
    shared = SameForAll("message", content)  # type: ignore[arg-type]
    first = PlaintextWriter("wamid.1", 1, SENDER, "+15550100002", shared).write_for(
        shared, "+15550100002", 1
    )
    content["n"] = 2
    second = PlaintextWriter("wamid.2", 1, SENDER, "+15550100002", shared).write_for(
        shared, "+15550100002", 1
    )
    assert Plaintext.model_validate_json(first).content == {"n": 1}
    assert Plaintext.model_validate_json(second).content == {"n": 2}
