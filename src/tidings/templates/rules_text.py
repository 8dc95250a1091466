"""Review rules on the texts: lengths, placeholders, examples and characters. PURE."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from tidings.templates.definition import AUTHENTICATION, NAMED, PLACEHOLDER, TemplateDraft
from tidings.templates.findings import (
    BODY_MAX,
    BUTTON_TEXT_MAX,
    CHARACTER_LIMIT,
    FIXED_WORDS_PER_PARAMETER,
    FOOTER_FORMAT,
    FOOTER_MAX,
    HEADER_MAX,
    HEADER_OR_BODY_FORMAT,
    INVALID_PARAMETER,
    LEADING_OR_TRAILING_PARAMETER,
    TOO_MANY_PARAMETERS,
    Finding,
    ReviewContext,
    Rule,
    own_texts,
    refuse,
    registrar,
    reject,
)

TEXT_RULES: dict[str, Rule] = {}
rule = registrar(TEXT_RULES)


# -- lengths --------------------------------------------------------------------------------------


@rule("lengths")
def check_lengths(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    limits = [("body", draft.body.text, BODY_MAX), ("footer", draft.footer or "", FOOTER_MAX)]
    if draft.header is not None and draft.header.text is not None:
        limits.append(("header", draft.header.text.text, HEADER_MAX))
    limits.extend((f"button {b.type} '{b.text}'", b.text, BUTTON_TEXT_MAX) for b in draft.buttons)
    for where, text, limit in limits:
        if len(text) > limit:
            yield refuse(
                "lengths",
                CHARACTER_LIMIT,
                f"The {where} text is {len(text)} characters long; the limit is {limit}.",
            )
    if draft.category != AUTHENTICATION and not draft.body.text.strip():
        yield refuse("lengths", INVALID_PARAMETER, "The body text must not be empty.")


# -- placeholders ---------------------------------------------------------------------------------

_BRACES = re.compile(r"\{\{|\}\}")


@rule("malformed_placeholders")
def check_braces(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for where, part in own_texts(draft):
        leftover = _BRACES.search(PLACEHOLDER.sub("", part.text))
        if leftover:
            yield refuse(
                "malformed_placeholders",
                HEADER_OR_BODY_FORMAT,
                f"The {where} has malformed braces near '{_around(part.text, leftover.start())}':"
                " a parameter is written {{1}} or {{lowercase_name}}, with nothing else inside.",
            )
    if _BRACES.search(draft.footer or ""):
        yield refuse(
            "malformed_placeholders",
            FOOTER_FORMAT,
            "The footer cannot contain parameters or braces.",
        )


def _around(text: str, at: int) -> str:
    return text[max(0, at - 8) : at + 10]


@rule("parameter_format")
def check_parameter_format(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for where, part in own_texts(draft):
        names = part.placeholders
        positional = [n for n in names if n.isdigit()]
        named = [n for n in names if not n.isdigit()]
        if draft.parameter_format == NAMED and positional:
            yield refuse(
                "parameter_format",
                INVALID_PARAMETER,
                f"The {where} uses positional parameters ({{{{{positional[0]}}}}}) but the"
                " template's parameter_format is named.",
            )
        elif draft.parameter_format != NAMED and named:
            yield refuse(
                "parameter_format",
                INVALID_PARAMETER,
                f"The {where} uses the named parameter {{{{{named[0]}}}}}: set parameter_format"
                " to 'named', or use positional parameters {{1}}, {{2}}.",
            )
        if draft.parameter_format == NAMED:
            repeated = [n for n, count in Counter(named).items() if count > 1]
            if repeated:
                yield refuse(
                    "parameter_format",
                    INVALID_PARAMETER,
                    f"The {where} uses the named parameter {{{{{repeated[0]}}}}} more than once;"
                    " named parameters must be unique.",
                )


@rule("header_parameters")
def check_header_parameters(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    if draft.header is not None and draft.header.text is not None:
        count = len(draft.header.text.placeholders)
        if count > 1:
            yield refuse(
                "header_parameters",
                HEADER_OR_BODY_FORMAT,
                f"A text header can have one parameter; this one has {count}.",
            )


@rule("sequential_parameters")
def check_sequence(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    if draft.parameter_format == NAMED:
        return
    for where, part in own_texts(draft):
        order = list(dict.fromkeys(int(n) for n in part.placeholders if n.isdigit()))
        if order != list(range(1, len(order) + 1)):
            shown = ", ".join(str(n) for n in order)
            yield reject(
                "sequential_parameters",
                "INVALID_FORMAT",
                f"The {where}'s positional parameters must start at {{{{1}}}} and go up by one"
                f" in order of appearance; found {shown}.",
            )


@rule("leading_or_trailing_parameter")
def check_edges(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    if draft.category == AUTHENTICATION:
        return
    text = draft.body.text.strip()
    if PLACEHOLDER.match(text) or re.search(r"\{\{[^{}]*\}\}$", text):
        yield refuse(
            "leading_or_trailing_parameter",
            LEADING_OR_TRAILING_PARAMETER,
            "The body cannot start or end with a parameter: add fixed text before the first"
            " and after the last one.",
        )


@rule("adjacent_parameters")
def check_adjacent(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for where, part in own_texts(draft):
        if re.search(r"\}\}\s*\{\{", part.text):
            yield reject(
                "adjacent_parameters",
                "INVALID_FORMAT",
                f"The {where} has two parameters side by side ({{{{1}}}}{{{{2}}}}): put fixed"
                " text between them.",
            )


@rule("parameter_density")
def check_density(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    if draft.category == AUTHENTICATION:
        return
    count = len(draft.body.placeholders)
    words = len(re.findall(r"[^\W_]+", PLACEHOLDER.sub(" ", draft.body.text)))
    if count and words < FIXED_WORDS_PER_PARAMETER * count:
        yield refuse(
            "parameter_density",
            TOO_MANY_PARAMETERS,
            f"The body has {count} parameters but only {words} words of fixed text; it needs at"
            f" least {FIXED_WORDS_PER_PARAMETER * count}. Remove parameters or add text.",
        )


@rule("examples_match")
def check_examples(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for where, part in own_texts(draft):
        wanted = list(dict.fromkeys(part.placeholders))
        if not wanted:
            continue
        given = dict(part.examples)
        if part.examples_given == 0:
            yield refuse(
                "examples_match",
                INVALID_PARAMETER,
                f"The {where} has {len(wanted)} parameter(s) but no example values: add one"
                " example per parameter.",
            )
        elif part.examples_given != len(wanted) or set(given) != set(wanted):
            yield refuse(
                "examples_match",
                INVALID_PARAMETER,
                f"The {where} has parameters {', '.join(wanted)} but examples were given for"
                f" {', '.join(given) or 'none'} ({part.examples_given} value(s)).",
            )
        elif any(not value.strip() for value in given.values()):
            yield refuse(
                "examples_match", INVALID_PARAMETER, f"The {where}'s example values are empty."
            )


# -- characters -----------------------------------------------------------------------------------

_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@rule("allowed_characters")
def check_characters(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    if draft.header is not None and draft.header.text is not None:
        text = PLACEHOLDER.sub("", draft.header.text.text)
        if "\n" in text or _EMOJI.search(text) or re.search(r"[*_~`]", text):
            yield refuse(
                "allowed_characters",
                HEADER_OR_BODY_FORMAT,
                "A text header cannot contain new lines, emoji or formatting characters (* _ ~ `).",
            )
    body = draft.body.text
    if "\t" in body or _CONTROL.search(body) or "     " in body:
        yield refuse(
            "allowed_characters",
            HEADER_OR_BODY_FORMAT,
            "The body cannot contain tabs, control characters or more than 4 spaces in a row.",
        )
    if draft.footer and (_CONTROL.search(draft.footer) or "\n" in draft.footer):
        yield refuse("allowed_characters", FOOTER_FORMAT, "The footer cannot contain new lines.")
    if draft.category == AUTHENTICATION and any(_EMOJI.search(t) for t in draft.texts()):
        yield refuse(
            "allowed_characters",
            INVALID_PARAMETER,
            "Authentication templates cannot contain emoji.",
        )
