"""The category classifier: does a template read as MARKETING, UTILITY or AUTHENTICATION?

PURE: functions over frozen inputs, no I/O (the service reads the labelled set and passes it).

Model: multinomial naive Bayes over binarized features (each feature counted once per
template, which suits texts this short), with Laplace smoothing. Features are lowercased
words, word bigrams, the button types, and a few hand-written *signals* that generalise
across wordings and languages (a percentage, a price, a promo code, an OTP phrase, urgency).
Naive Bayes is chosen over logistic regression because it trains exactly in one pass, needs no
tuning loop, and stays readable: the evidence for a verdict is the features whose
log-likelihood ratio pushed hardest, which the review quotes to the business.

Evaluation (`cross_validate`) is stratified k-fold cross-validation with a fixed seed: each
example is predicted by a model that never saw it. docs/templates.md records the figures.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tidings.templates.definition import PLACEHOLDER, TemplateDraft

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Hand-written signals: (name, pattern). Names start with '#' so they never collide with words.
_SIGNALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("#percent", re.compile(r"\d+\s?%|%\s?\d+")),
    ("#price", re.compile(r"[$€£₹¥]\s?\d|\d\s?(?:usd|eur|gbp|inr|brl|mxn|€|\$)\b", re.I)),
    (
        "#promo_code",
        re.compile(
            r"\b(?:code|coupon|voucher|c[oó]digo|gutschein|cupom|promo)\b\W{0,3}[A-Z][A-Z0-9]{3,}\b"
            r"|\b[A-Z]{3,}\d{1,3}\b"
        ),
    ),
    (
        "#otp_phrase",
        re.compile(
            r"verification code|security code|one[- ]time (?:code|password|passcode)|\botp\b"
            r"|login code|passcode|c[oó]digo de (?:verificaci[oó]n|verifica[cç][aã]o|acceso)"
            r"|code de (?:v[ée]rification|connexion)|best[äa]tigungscode|do not share",
            re.I,
        ),
    ),
    (
        "#urgency",
        re.compile(
            r"today only|last chance|hurry|limited[- ]time|ends (?:soon|tonight|today|sunday)"
            r"|while stocks? last|don'?t miss|only \d+ left|flash sale|before it'?s gone",
            re.I,
        ),
    ),
    (
        "#shop_cta",
        re.compile(
            r"shop now|buy now|order now|book now|grab|claim your|upgrade (?:now|today)"
            r"|treat yourself|explore (?:our|the)|new arrivals?|just dropped|check out our",
            re.I,
        ),
    ),
    ("#free", re.compile(r"\bfree\b|\bgratis\b|\bgratuit|\bkostenlos", re.I)),
)
_HAND_WEIGHT = 2  # a signal counts as much as two words: they carry the category's meaning


@dataclass(frozen=True)
class LabelledExample:
    label: str
    text: str
    buttons: tuple[str, ...] = ()  # button types, e.g. ("QUICK_REPLY", "URL")
    note: str = ""


def draft_text(draft: TemplateDraft) -> tuple[str, tuple[str, ...]]:
    """What the classifier reads of a draft: every text, and its button types."""
    return " \n".join(draft.texts()), tuple(button.type for button in draft.buttons)


def features(text: str, buttons: Sequence[str] = ()) -> tuple[str, ...]:
    """The distinct features of one template (binarized: each appears once)."""
    plain = PLACEHOLDER.sub(" ", text)
    words = [_word(w) for w in _WORD.findall(plain.lower())]
    found: list[str] = list(dict.fromkeys(words))
    found.extend(f"{a} {b}" for a, b in itertools.pairwise(words))
    for name, pattern in _SIGNALS:
        if pattern.search(plain):
            found.extend([name] * _HAND_WEIGHT)
    # An OTP button is what makes a template AUTHENTICATION by construction (a rule checks
    # it); leaving it out keeps the classifier judging the words, not the filing.
    found.extend(f"@button:{kind.lower()}" for kind in buttons if kind != "OTP")
    # Keep the hand weighting (duplicates of signals), drop other repeats.
    out: list[str] = []
    seen: set[str] = set()
    for feature in found:
        if feature.startswith("#") or feature not in seen:
            out.append(feature)
            seen.add(feature)
    return tuple(out)


def _word(word: str) -> str:
    return "<num>" if word.isdigit() else word


@dataclass(frozen=True)
class NaiveBayes:
    labels: tuple[str, ...]
    log_prior: Mapping[str, float]
    log_likelihood: Mapping[str, Mapping[str, float]]
    log_unseen: Mapping[str, float]  # a feature the label never showed (smoothing mass)
    vocabulary: frozenset[str]


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: tuple[tuple[str, float], ...]  # best first
    evidence: tuple[str, ...]  # features that pushed hardest toward `label`

    def probability(self, label: str) -> float:
        return dict(self.probabilities).get(label, 0.0)

    @property
    def confidence(self) -> float:
        return self.probabilities[0][1]


def train(examples: Iterable[LabelledExample], alpha: float = 0.5) -> NaiveBayes:
    documents: dict[str, int] = Counter()
    counts: dict[str, Counter[str]] = {}
    for example in examples:
        documents[example.label] += 1
        counts.setdefault(example.label, Counter()).update(features(example.text, example.buttons))
    if not documents:
        raise ValueError("the classifier needs labelled examples")
    labels = tuple(sorted(documents))
    vocabulary = frozenset(f for counter in counts.values() for f in counter)
    total = sum(documents.values())
    log_prior = {label: math.log(documents[label] / total) for label in labels}
    log_likelihood: dict[str, dict[str, float]] = {}
    log_unseen: dict[str, float] = {}
    for label in labels:
        counter = counts[label]
        denominator = sum(counter.values()) + alpha * len(vocabulary)
        log_likelihood[label] = {f: math.log((n + alpha) / denominator) for f, n in counter.items()}
        log_unseen[label] = math.log(alpha / denominator)
    return NaiveBayes(labels, log_prior, log_likelihood, log_unseen, vocabulary)


def predict(model: NaiveBayes, text: str, buttons: Sequence[str] = ()) -> Prediction:
    known = [f for f in features(text, buttons) if f in model.vocabulary]
    scores = {
        label: model.log_prior[label]
        + sum(model.log_likelihood[label].get(f, model.log_unseen[label]) for f in known)
        for label in model.labels
    }
    top = max(scores.values())
    exps = {label: math.exp(score - top) for label, score in scores.items()}
    norm = sum(exps.values())
    ranked = sorted(((label, exps[label] / norm) for label in model.labels), key=lambda p: -p[1])
    best = ranked[0][0]
    return Prediction(best, tuple(ranked), _evidence(model, best, known))


def _evidence(model: NaiveBayes, label: str, known: Sequence[str], top: int = 5) -> tuple[str, ...]:
    """The features with the largest log-likelihood ratio for `label` against the others."""

    def lift(feature: str) -> float:
        mine = model.log_likelihood[label].get(feature, model.log_unseen[label])
        others = [
            model.log_likelihood[other].get(feature, model.log_unseen[other])
            for other in model.labels
            if other != label
        ]
        return mine - max(others) if others else mine

    ranked = sorted(dict.fromkeys(known), key=lift, reverse=True)
    return tuple(f for f in ranked[:top] if lift(f) > 0)


# -- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    support: int

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True)
class Evaluation:
    folds: int
    scores: tuple[ClassScores, ...]
    confusion: tuple[tuple[str, str, int], ...]  # (true, predicted, count)
    mistakes: tuple[tuple[LabelledExample, str], ...]  # (example, predicted label)

    @property
    def accuracy(self) -> float:
        right = sum(n for truth, guess, n in self.confusion if truth == guess)
        total = sum(n for _, _, n in self.confusion)
        return right / total if total else 0.0

    def of(self, label: str) -> ClassScores:
        return next(s for s in self.scores if s.label == label)


def stratified_folds(
    examples: Sequence[LabelledExample], folds: int, seed: int
) -> list[list[LabelledExample]]:
    """Split into `folds` parts with each label spread evenly (a fixed shuffle per label)."""
    rng = random.Random(seed)
    parts: list[list[LabelledExample]] = [[] for _ in range(folds)]
    by_label: dict[str, list[LabelledExample]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    offset = 0
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        for i, example in enumerate(group):
            parts[(i + offset) % folds].append(example)
        offset += len(group)
    return parts


def cross_validate(
    examples: Sequence[LabelledExample], folds: int = 5, seed: int = 2025, alpha: float = 0.5
) -> Evaluation:
    """Stratified k-fold: every example is scored by a model trained without it."""
    if folds < 2:
        raise ValueError("cross-validation needs at least two folds")
    parts = stratified_folds(examples, folds, seed)
    confusion: Counter[tuple[str, str]] = Counter()
    mistakes: list[tuple[LabelledExample, str]] = []
    for i, held_out in enumerate(parts):
        model = train((e for j, part in enumerate(parts) if j != i for e in part), alpha)
        for example in held_out:
            guess = predict(model, example.text, example.buttons).label
            confusion[(example.label, guess)] += 1
            if guess != example.label:
                mistakes.append((example, guess))
    labels = sorted({e.label for e in examples})
    scores = []
    for label in labels:
        true_positive = confusion[(label, label)]
        predicted = sum(n for (_, guess), n in confusion.items() if guess == label)
        actual = sum(n for (truth, _), n in confusion.items() if truth == label)
        scores.append(
            ClassScores(
                label,
                precision=true_positive / predicted if predicted else 0.0,
                recall=true_positive / actual if actual else 0.0,
                support=actual,
            )
        )
    return Evaluation(
        folds=folds,
        scores=tuple(scores),
        confusion=tuple((t, g, n) for (t, g), n in sorted(confusion.items())),
        mistakes=tuple(mistakes),
    )
