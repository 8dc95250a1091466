"""Consent: an append-only ledger per (business, customer, category), and blocks.

The ledger is a list of `ConsentEvent`s (opt-ins recorded through the API with their source,
time, wording shown and actor; opt-outs from the client's "Stop promotions" action or a STOP
keyword; resumes from START). `consent_state` folds it into the current `ConsentStatus`.

One rule protects customers from businesses: an opt-out the customer made themselves (client
action or keyword) can only be lifted by the customer (a resume, or an opt-in whose source is
the customer's own action). A business recording an opt-in through the API does not undo it.

Enforcement (`check_consent`): a template whose category the customer opted out of is refused
with 131050 (Meta reports it asynchronously). Free-form replies inside the window are never
refused for consent: the customer just wrote.

Blocks (`check_blocks`): a customer who blocked the business receives nothing from it. Meta
does not tell a business it was blocked; the send is reported as 131026 "Message
undeliverable" (async), which also covers unreachable numbers, so the block stays private.
A business that blocked the customer gets 130403 synchronously.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tidings.policy.categories import Category
from tidings.policy.reasons import MetaCode, Reason, Rule, reason


class ConsentAction(StrEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    RESUME = "resume"


class ConsentSource(StrEnum):
    API = "api"  # recorded by the business (web form, checkout box, paper form...)
    CLIENT_ACTION = "client_action"  # the customer's "Stop promotions" / resume button
    KEYWORD = "keyword"  # the customer typed STOP / START (or an equivalent)
    OPERATOR = "operator"  # the platform operator (support request, legal order)


CUSTOMER_SOURCES: frozenset[ConsentSource] = frozenset(
    {ConsentSource.CLIENT_ACTION, ConsentSource.KEYWORD}
)


class ConsentStatus(StrEnum):
    UNKNOWN = "unknown"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


@dataclass(frozen=True)
class ConsentEvent:
    """One ledger entry. `wording` is the text shown at opt-in; `detail` e.g. the keyword."""

    action: ConsentAction
    category: Category
    at: datetime
    source: ConsentSource
    actor: str
    wording: str | None = None
    detail: str | None = None

    @property
    def by_customer(self) -> bool:
        return self.source in CUSTOMER_SOURCES

    def to_evidence(self) -> dict[str, str | None]:
        """A JSON-ready record for exports (consent evidence)."""
        return {
            "action": str(self.action),
            "category": str(self.category),
            "at": self.at.isoformat(),
            "source": str(self.source),
            "actor": self.actor,
            "wording": self.wording,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ConsentState:
    status: ConsentStatus = ConsentStatus.UNKNOWN
    since: datetime | None = None
    # The opt-out is the customer's own and only the customer can lift it.
    locked_by_customer: bool = False
    last_event: ConsentEvent | None = None


def apply_event(state: ConsentState, event: ConsentEvent) -> ConsentState:
    """The state after one more event (events must come in time order)."""
    if event.action is ConsentAction.OPT_OUT:
        return ConsentState(
            ConsentStatus.OPTED_OUT,
            event.at,
            locked_by_customer=state.locked_by_customer or event.by_customer,
            last_event=event,
        )
    # OPT_IN or RESUME
    locked = state.status is ConsentStatus.OPTED_OUT and state.locked_by_customer
    if locked and not event.by_customer:
        return state  # a business cannot undo the customer's own opt-out
    return ConsentState(ConsentStatus.OPTED_IN, event.at, False, event)


def consent_state(
    events: Iterable[ConsentEvent], category: Category, at: datetime | None = None
) -> ConsentState:
    """Fold the ledger for one category, considering only events up to `at` (inclusive)."""
    relevant = [e for e in events if e.category is category and (at is None or e.at <= at)]
    state = ConsentState()
    for event in sorted(relevant, key=lambda e: e.at):  # stable: ties keep ledger order
        state = apply_event(state, event)
    return state


def consent_states(
    events: Iterable[ConsentEvent], at: datetime | None = None
) -> dict[Category, ConsentState]:
    listed = list(events)
    return {category: consent_state(listed, category, at) for category in Category}


def evidence(events: Iterable[ConsentEvent]) -> list[dict[str, str | None]]:
    """The ledger in time order as JSON-ready records."""
    return [e.to_evidence() for e in sorted(events, key=lambda e: e.at)]


def check_consent(category: Category, status: ConsentStatus) -> Reason | None:
    if category is Category.SERVICE or status is not ConsentStatus.OPTED_OUT:
        return None
    if category is Category.MARKETING:
        details = "The customer chose to stop receiving marketing messages from this business."
    else:
        details = f"The customer opted out of {category.value.lower()} messages from this business."
    return reason(Rule.CONSENT, MetaCode.MARKETING_OPT_OUT, details)


def check_blocks(customer_blocked_business: bool, business_blocked_customer: bool) -> list[Reason]:
    reasons: list[Reason] = []
    if customer_blocked_business:
        reasons.append(
            reason(
                Rule.BLOCK,
                MetaCode.UNDELIVERABLE,
                "Message undeliverable: the recipient cannot receive messages from this business.",
            )
        )
    if business_blocked_customer:
        reasons.append(
            reason(
                Rule.BLOCK,
                MetaCode.USER_BLOCKED,
                "This business has blocked the recipient; unblock them to send messages.",
            )
        )
    return reasons


# --- keywords ---------------------------------------------------------------------------------


class KeywordAction(StrEnum):
    STOP = "stop"
    START = "start"


def normalize_text(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a message, words single-spaced.

    Letters keep their combining marks only where they are part of the script (Devanagari
    vowel signs); Latin accents are dropped. Everything that is not a letter, mark or digit
    (punctuation, emoji, symbols) becomes a space.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    kept: list[str] = []
    for char in decomposed:
        if unicodedata.combining(char) and kept and kept[-1].isascii():
            continue  # an accent on a Latin letter
        kept.append(char)
    folded = "".join(kept).casefold()
    cleaned = "".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in folded)
    return " ".join(cleaned.split())


# Whole-message keywords per language. Hindi is given transliterated and in Devanagari.
# Ambiguous everyday words ("cancel", "end", "no") are deliberately absent.
STOP_KEYWORDS: dict[str, tuple[str, ...]] = {
    "en": ("stop", "stop all", "stop promotions", "stop marketing", "unsubscribe", "opt out",
           "optout"),
    "es": ("baja", "darme de baja", "dar de baja", "parar", "detener", "alto",
           "cancelar suscripción", "desuscribir", "desuscribirme", "no más mensajes"),
    "pt": ("pare", "parar", "sair", "descadastrar", "cancelar inscrição", "não quero mais"),
    "fr": ("arrêt", "arrêter", "stop", "désabonner", "me désabonner", "désinscrire",
           "me désinscrire"),
    "de": ("stopp", "abmelden", "abbestellen", "austragen", "beenden"),
    "it": ("basta", "annulla iscrizione", "disiscrivimi", "cancellami", "fermati"),
    "id": ("berhenti", "berhenti berlangganan", "batal langganan", "henti"),
    "hi": ("band", "band karo", "bandh", "bandh karo", "mat bhejo", "rok do",
           "बंद", "बंद करो", "रोको"),
}  # fmt: skip

START_KEYWORDS: dict[str, tuple[str, ...]] = {
    "en": ("start", "unstop", "resume", "subscribe", "opt in", "optin", "start promotions"),
    "es": ("alta", "darme de alta", "reanudar", "iniciar", "comenzar", "suscribirme"),
    "pt": ("voltar", "retomar", "começar", "reativar", "iniciar"),
    "fr": ("reprendre", "démarrer", "commencer", "m'abonner", "réabonner"),
    "de": ("start", "starten", "anmelden", "fortsetzen"),
    "it": ("riprendi", "inizia", "iscrivimi", "ricomincia"),
    "id": ("mulai", "lanjut", "lanjutkan", "berlangganan"),
    "hi": ("shuru", "shuru karo", "chalu", "chalu karo", "शुरू", "शुरू करो"),
}  # fmt: skip

LANGUAGES: tuple[str, ...] = tuple(STOP_KEYWORDS)


@dataclass(frozen=True)
class KeywordMatch:
    action: KeywordAction
    keyword: str  # the normalised phrase matched
    languages: tuple[str, ...]  # every language using the phrase, in LANGUAGES order

    @property
    def language(self) -> str:
        return self.languages[0]


def _index() -> dict[str, tuple[KeywordAction, tuple[str, ...]]]:
    table: dict[str, tuple[KeywordAction, tuple[str, ...]]] = {}
    for action, keywords in ((KeywordAction.STOP, STOP_KEYWORDS),
                             (KeywordAction.START, START_KEYWORDS)):  # fmt: skip
        for language, phrases in keywords.items():
            for phrase in phrases:
                key = normalize_text(phrase)
                known = table.get(key)
                if known is None:
                    table[key] = (action, (language,))
                elif known[0] is not action:
                    raise ValueError(f"keyword {phrase!r} means both STOP and START")
                elif language not in known[1]:
                    table[key] = (action, (*known[1], language))
    return table


_KEYWORDS: Mapping[str, tuple[KeywordAction, tuple[str, ...]]] = _index()


def detect_keyword(text: str) -> KeywordMatch | None:
    """STOP/START intent when the whole message is a keyword ("STOP!", "Baja.", "  stop ")."""
    key = normalize_text(text)
    found = _KEYWORDS.get(key)
    if found is None:
        return None
    return KeywordMatch(found[0], key, found[1])


CONFIRMATIONS: dict[tuple[KeywordAction, str], str] = {
    (KeywordAction.STOP, "en"): "You will no longer receive promotional messages from {business}. "
    "Reply START to receive them again.",
    (KeywordAction.START, "en"): "You will receive promotional messages from {business} again. "
    "Reply STOP to stop them.",
    (KeywordAction.STOP, "es"): "Ya no recibirás mensajes promocionales de {business}. "
    "Responde ALTA para volver a recibirlos.",
    (KeywordAction.START, "es"): "Volverás a recibir mensajes promocionales de {business}. "
    "Responde BAJA para dejar de recibirlos.",
    (KeywordAction.STOP, "pt"): "Você não receberá mais mensagens promocionais de {business}. "
    "Responda VOLTAR para recebê-las novamente.",
    (KeywordAction.START, "pt"): "Você voltará a receber mensagens promocionais de {business}. "
    "Responda PARE para não recebê-las.",
    (KeywordAction.STOP, "fr"): "Vous ne recevrez plus de messages promotionnels de {business}. "
    "Répondez REPRENDRE pour les recevoir à nouveau.",
    (KeywordAction.START, "fr"): "Vous recevrez à nouveau les messages promotionnels de "
    "{business}. Répondez ARRÊT pour les arrêter.",
    (KeywordAction.STOP, "de"): "Sie erhalten keine Werbenachrichten mehr von {business}. "
    "Antworten Sie START, um sie wieder zu erhalten.",
    (KeywordAction.START, "de"): "Sie erhalten wieder Werbenachrichten von {business}. "
    "Antworten Sie STOPP, um sie abzubestellen.",
    (KeywordAction.STOP, "it"): "Non riceverai più messaggi promozionali da {business}. "
    "Rispondi RIPRENDI per riceverli di nuovo.",
    (KeywordAction.START, "it"): "Riceverai di nuovo messaggi promozionali da {business}. "
    "Rispondi BASTA per interromperli.",
    (KeywordAction.STOP, "id"): "Anda tidak akan lagi menerima pesan promosi dari {business}. "
    "Balas MULAI untuk menerimanya kembali.",
    (KeywordAction.START, "id"): "Anda akan kembali menerima pesan promosi dari {business}. "
    "Balas BERHENTI untuk menghentikannya.",
    (KeywordAction.STOP, "hi"): "Ab aapko {business} se promotional sandesh nahin milenge. "
    "Dobara paane ke liye SHURU likhein.",
    (KeywordAction.START, "hi"): "Aapko {business} se promotional sandesh phir se milenge. "
    "Rokne ke liye BAND likhein.",
}


def confirmation_text(action: KeywordAction, language: str, business: str) -> str:
    """The message confirming a STOP/START to the customer (English when unknown language)."""
    template = CONFIRMATIONS.get((action, language)) or CONFIRMATIONS[(action, "en")]
    return template.format(business=business)


def keyword_event(
    match: KeywordMatch, at: datetime, actor: str, category: Category = Category.MARKETING
) -> ConsentEvent:
    """The ledger entry a detected keyword records (STOP → opt-out, START → resume)."""
    action = ConsentAction.OPT_OUT if match.action is KeywordAction.STOP else ConsentAction.RESUME
    return ConsentEvent(
        action,
        category,
        at,
        ConsentSource.KEYWORD,
        actor,
        detail=f"{match.language}:{match.keyword}",
    )


def user_preferences_item(wa_id: str, event: ConsentEvent) -> dict[str, str | int]:
    """One `user_preferences[]` item of the webhook of the same name, for a marketing stop or
    resume: `{wa_id, detail, category: "marketing_messages", value: "stop"|"resume", timestamp}`.
    """
    if event.category is not Category.MARKETING:
        raise ValueError("user_preferences webhooks describe marketing preferences only")
    stop = event.action is ConsentAction.OPT_OUT
    return {
        "wa_id": wa_id,
        "detail": "User requested to stop marketing messages"
        if stop
        else "User requested to resume marketing messages",
        "category": "marketing_messages",
        "value": "stop" if stop else "resume",
        "timestamp": int(event.at.timestamp()),
    }
