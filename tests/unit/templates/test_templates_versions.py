"""Diffs between template versions: structured and readable."""

from __future__ import annotations

from tidings.templates.versions import Snapshot, diff


def snapshot(version: int, body: str, buttons: list[dict], category: str = "UTILITY") -> Snapshot:
    components = [{"type": "BODY", "text": body}]
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return Snapshot(version, category, "POSITIONAL", tuple(components))


def test_diff_reports_each_changed_field_with_a_sentence() -> None:
    old = snapshot(1, "Order {{1}} shipped.", [{"type": "QUICK_REPLY", "text": "Thanks"}])
    new = snapshot(
        2,
        "Order {{1}} is on its way.",
        [
            {"type": "QUICK_REPLY", "text": "Thank you"},
            {"type": "URL", "text": "Track", "url": "https://a.example"},
        ],
        category="MARKETING",
    )
    found = diff(old, new)
    assert [(c.path, c.kind) for c in found.changes] == [
        ("category", "changed"),
        ("BODY.text", "changed"),
        ("BUTTONS[0].text", "changed"),
        ("BUTTONS[1]", "added"),
    ]
    body = found.to_json()
    assert body["from_version"] == 1 and body["to_version"] == 2
    assert "BODY.text changed from 'Order {{1}} shipped.'" in body["summary"]
    assert diff(old, old).to_json()["summary"] == "no changes"


def test_removed_components_are_reported() -> None:
    old = snapshot(1, "Hello.", [{"type": "QUICK_REPLY", "text": "Hi"}])
    new = snapshot(2, "Hello.", [])
    assert [(c.path, c.kind) for c in diff(old, new).changes] == [("BUTTONS", "removed")]
