"""Differences between two versions of a template, structured and readable. PURE.

A version is a snapshot (category, parameter format, components JSON). The diff walks the
components by type (HEADER, BODY, FOOTER, BUTTONS) and buttons by position, and reports each
changed field with its old and new value and a sentence a person can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_ORDER = ("HEADER", "BODY", "FOOTER", "BUTTONS")


@dataclass(frozen=True)
class Snapshot:
    version: int
    category: str
    parameter_format: str
    components: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Change:
    path: str  # e.g. "BODY.text", "BUTTONS[1].url", "category"
    kind: str  # added | removed | changed
    old: Any
    new: Any

    @property
    def sentence(self) -> str:
        if self.kind == "added":
            return f"{self.path} added: {self.new!r}"
        if self.kind == "removed":
            return f"{self.path} removed (was {self.old!r})"
        return f"{self.path} changed from {self.old!r} to {self.new!r}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "description": self.sentence,
        }


@dataclass(frozen=True)
class VersionDiff:
    from_version: int
    to_version: int
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "changes": [c.to_json() for c in self.changes],
            "summary": "; ".join(c.sentence for c in self.changes) or "no changes",
        }


def _by_type(components: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type", "")).upper(): c for c in components}


def _fields(path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key in ("type", "buttons"):
            continue
        if key not in old:
            changes.append(Change(f"{path}.{key}", "added", None, new[key]))
        elif key not in new:
            changes.append(Change(f"{path}.{key}", "removed", old[key], None))
        elif old[key] != new[key]:
            changes.append(Change(f"{path}.{key}", "changed", old[key], new[key]))
    return changes


def diff(old: Snapshot, new: Snapshot) -> VersionDiff:
    changes: list[Change] = []
    for attribute in ("category", "parameter_format"):
        before, after = getattr(old, attribute), getattr(new, attribute)
        if before != after:
            changes.append(Change(attribute, "changed", before, after))
    old_parts, new_parts = _by_type(old.components), _by_type(new.components)
    for kind in _ORDER:
        before_part, after_part = old_parts.get(kind), new_parts.get(kind)
        if before_part is None and after_part is None:
            continue
        if before_part is None:
            changes.append(Change(kind, "added", None, dict(after_part or {})))
            continue
        if after_part is None:
            changes.append(Change(kind, "removed", dict(before_part), None))
            continue
        changes.extend(_fields(kind, before_part, after_part))
        if kind == "BUTTONS":
            changes.extend(
                _buttons(before_part.get("buttons") or [], after_part.get("buttons") or [])
            )
    return VersionDiff(old.version, new.version, tuple(changes))


def _buttons(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[Change]:
    changes: list[Change] = []
    for i in range(max(len(old), len(new))):
        path = f"BUTTONS[{i}]"
        if i >= len(old):
            changes.append(Change(path, "added", None, dict(new[i])))
        elif i >= len(new):
            changes.append(Change(path, "removed", dict(old[i]), None))
        else:
            if old[i].get("type") != new[i].get("type"):
                changes.append(
                    Change(f"{path}.type", "changed", old[i].get("type"), new[i].get("type"))
                )
            changes.extend(_fields(path, old[i], new[i]))
    return changes
