"""The labelled example templates the category classifier learns from (and is measured on).

One JSON object per line: `label` (MARKETING | UTILITY | AUTHENTICATION), `text` (header,
body and footer as a customer reads them), `buttons` (button types) and an optional `note`
marking hard cases. Written for Tidings by hand; see docs/templates.md.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from tidings.templates.classifier import LabelledExample, NaiveBayes, train

FILES = ("marketing.jsonl", "utility.jsonl", "authentication.jsonl")


@cache
def load_examples() -> tuple[LabelledExample, ...]:
    examples = []
    folder = resources.files(__name__)
    for name in FILES:
        for line in folder.joinpath(name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                examples.append(
                    LabelledExample(
                        label=item["label"],
                        text=item["text"],
                        buttons=tuple(item.get("buttons", ())),
                        note=item.get("note", ""),
                    )
                )
    return tuple(examples)


@cache
def default_model() -> NaiveBayes:
    """The classifier trained on the whole kept set (trained once per process)."""
    return train(load_examples())
