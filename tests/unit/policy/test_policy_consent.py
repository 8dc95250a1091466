"""Consent ledger, blocks, STOP/START keywords in several languages, confirmations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.policy.categories import Category
from tidings.policy.consent import (
    CONFIRMATIONS,
    LANGUAGES,
    START_KEYWORDS,
    STOP_KEYWORDS,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentStatus,
    KeywordAction,
    check_blocks,
    check_consent,
    confirmation_text,
    consent_state,
    consent_states,
    detect_keyword,
    evidence,
    keyword_event,
    normalize_text,
    user_preferences_item,
)
from tidings.policy.reasons import MetaCode, Reporting, Rule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def ev(
    action: ConsentAction,
    minutes: int,
    source: ConsentSource = ConsentSource.API,
    category: Category = Category.MARKETING,
) -> ConsentEvent:
    actor = "customer" if source in (ConsentSource.KEYWORD, ConsentSource.CLIENT_ACTION) else "biz"
    return ConsentEvent(action, category, T0 + minutes * M, source, actor, wording="Offers?")


OPT_IN, OPT_OUT, RESUME = ConsentAction.OPT_IN, ConsentAction.OPT_OUT, ConsentAction.RESUME
API, KEY, CLIENT = ConsentSource.API, ConsentSource.KEYWORD, ConsentSource.CLIENT_ACTION


# --- ledger ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([], ConsentStatus.UNKNOWN),
        ([ev(OPT_IN, 0)], ConsentStatus.OPTED_IN),
        ([ev(OPT_IN, 0), ev(OPT_OUT, 1, CLIENT)], ConsentStatus.OPTED_OUT),
        ([ev(OPT_IN, 0), ev(OPT_OUT, 1, KEY), ev(RESUME, 2, KEY)], ConsentStatus.OPTED_IN),
        # a business cannot undo the customer's own opt-out
        ([ev(OPT_OUT, 1, KEY), ev(OPT_IN, 2, API)], ConsentStatus.OPTED_OUT),
        ([ev(OPT_OUT, 1, CLIENT), ev(RESUME, 2, API)], ConsentStatus.OPTED_OUT),
        # ... but it can lift an opt-out it recorded itself
        ([ev(OPT_OUT, 1, API), ev(OPT_IN, 2, API)], ConsentStatus.OPTED_IN),
        # the customer's own opt-in lifts it
        ([ev(OPT_OUT, 1, KEY), ev(OPT_IN, 2, CLIENT)], ConsentStatus.OPTED_IN),
        # order is by time, not by list position
        ([ev(OPT_OUT, 5, KEY), ev(OPT_IN, 0, API)], ConsentStatus.OPTED_OUT),
        ([ev(RESUME, 9, KEY), ev(OPT_OUT, 5, KEY)], ConsentStatus.OPTED_IN),
    ],
)
def test_ledger_fold(events: list[ConsentEvent], status: ConsentStatus) -> None:
    assert consent_state(events, Category.MARKETING).status is status


def test_state_is_per_category_and_as_of() -> None:
    events = [
        ev(OPT_IN, 0, category=Category.UTILITY),
        ev(OPT_OUT, 10, KEY),
    ]
    states = consent_states(events)
    assert states[Category.UTILITY].status is ConsentStatus.OPTED_IN
    assert states[Category.MARKETING].status is ConsentStatus.OPTED_OUT
    assert states[Category.AUTHENTICATION].status is ConsentStatus.UNKNOWN
    assert consent_state(events, Category.MARKETING, at=T0 + 9 * M).status is ConsentStatus.UNKNOWN
    assert consent_state(events, Category.MARKETING, at=T0 + 10 * M).since == T0 + 10 * M


def test_evidence_export_is_ordered_and_complete() -> None:
    records = evidence([ev(OPT_OUT, 5, KEY), ev(OPT_IN, 0, API)])
    assert [r["action"] for r in records] == ["opt_in", "opt_out"]
    assert records[0] == {
        "action": "opt_in",
        "category": "MARKETING",
        "at": T0.isoformat(),
        "source": "api",
        "actor": "biz",
        "wording": "Offers?",
        "detail": None,
    }


@pytest.mark.parametrize(
    ("category", "status", "refused"),
    [
        (Category.MARKETING, ConsentStatus.OPTED_OUT, True),
        (Category.MARKETING, ConsentStatus.OPTED_IN, False),
        (Category.MARKETING, ConsentStatus.UNKNOWN, False),
        (Category.UTILITY, ConsentStatus.OPTED_OUT, True),
        (Category.AUTHENTICATION, ConsentStatus.OPTED_OUT, True),
        (Category.SERVICE, ConsentStatus.OPTED_OUT, False),
    ],
)
def test_check_consent(category: Category, status: ConsentStatus, refused: bool) -> None:
    reason = check_consent(category, status)
    assert (reason is not None) is refused
    if reason is not None:
        assert reason.rule is Rule.CONSENT
        assert reason.code is MetaCode.MARKETING_OPT_OUT
        assert reason.reporting is Reporting.ASYNC
        assert reason.retry_after is None


def test_blocks() -> None:
    assert check_blocks(False, False) == []
    (customer,) = check_blocks(True, False)
    assert customer.code == 131026 and customer.reporting is Reporting.ASYNC
    assert "block" not in customer.details.lower()  # the block stays private
    (business,) = check_blocks(False, True)
    assert business.code == 130403 and business.reporting is Reporting.SYNC
    assert [r.code for r in check_blocks(True, True)] == [131026, 130403]


# --- keywords -------------------------------------------------------------------------------

STOPS = [
    ("STOP", "en"),
    ("stop!", "en"),
    ("  Stop.  ", "en"),
    ("STOP 🛑", "en"),
    ("Unsubscribe", "en"),
    ("opt-out", "en"),
    ("BAJA", "es"),
    ("Baja.", "es"),
    ("darme de baja", "es"),
    ("Cancelar suscripcion", "es"),
    ("no mas mensajes", "es"),
    ("PARE", "pt"),
    ("Não quero mais", "pt"),
    ("cancelar inscricao", "pt"),
    ("ARRÊT", "fr"),
    ("arret", "fr"),
    ("Désabonner", "fr"),
    ("STOPP", "de"),
    ("Abmelden!", "de"),
    ("BASTA", "it"),
    ("disiscrivimi", "it"),
    ("Berhenti", "id"),
    ("batal langganan", "id"),
    ("band karo", "hi"),
    ("Mat bhejo", "hi"),
    ("बंद करो", "hi"),
]

STARTS = [
    ("START", "en"),
    ("Resume", "en"),
    ("unstop", "en"),
    ("ALTA", "es"),
    ("Reanudar", "es"),
    ("VOLTAR", "pt"),
    ("começar", "pt"),
    ("comecar", "pt"),
    ("REPRENDRE", "fr"),
    ("Démarrer", "fr"),
    ("m'abonner", "fr"),
    ("Starten", "de"),
    ("fortsetzen", "de"),
    ("RIPRENDI", "it"),
    ("Mulai", "id"),
    ("shuru karo", "hi"),
    ("शुरू", "hi"),
]


@pytest.mark.parametrize(("text", "language"), STOPS)
def test_stop_keywords(text: str, language: str) -> None:
    match = detect_keyword(text)
    assert match is not None, text
    assert match.action is KeywordAction.STOP
    assert language in match.languages


@pytest.mark.parametrize(("text", "language"), STARTS)
def test_start_keywords(text: str, language: str) -> None:
    match = detect_keyword(text)
    assert match is not None, text
    assert match.action is KeywordAction.START
    assert language in match.languages


@pytest.mark.parametrize(
    "text",
    [
        "don't stop",
        "Please stop sending me these",
        "stopped",
        "non-stop",
        "stop stop",
        "bus stop",
        "baja el precio",
        "quiero darme de baja ya",
        "startup",
        "start the order",
        "alto precio",
        "cancel",
        "no",
        "",
        "   ",
        "🛑",
        "para mi",
        "hello",
    ],
)
def test_keyword_negatives(text: str) -> None:
    assert detect_keyword(text) is None


def test_every_language_has_both_actions_and_confirmations() -> None:
    assert len(LANGUAGES) >= 5
    for language in LANGUAGES:
        assert STOP_KEYWORDS[language] and START_KEYWORDS[language]
        for action in KeywordAction:
            assert (action, language) in CONFIRMATIONS


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_texts_name_a_working_keyword(language: str) -> None:
    """Each confirmation tells the customer a word that does the opposite; it must work."""
    for action, opposite in ((KeywordAction.STOP, KeywordAction.START),
                             (KeywordAction.START, KeywordAction.STOP)):  # fmt: skip
        text = confirmation_text(action, language, "Acme")
        assert "Acme" in text
        words = [w for w in text.split() if w.isupper() and len(w) > 2]
        assert any((m := detect_keyword(w)) is not None and m.action is opposite for w in words), (
            language,
            action,
            text,
        )


def test_confirmation_falls_back_to_english() -> None:
    assert confirmation_text(KeywordAction.STOP, "xx", "Acme") == confirmation_text(
        KeywordAction.STOP, "en", "Acme"
    )


def test_normalize_text() -> None:
    assert normalize_text("  ¡DÉSABONNER!  ") == "desabonner"
    assert normalize_text("Straße") == "strasse"
    assert normalize_text("opt-out") == "opt out"
    assert normalize_text("बंद करो") == normalize_text("बंद   करो!")


def test_keyword_event_and_user_preferences_webhook() -> None:
    match = detect_keyword("Baja")
    assert match is not None
    event = keyword_event(match, T0, actor="+34600000001")
    assert event.action is ConsentAction.OPT_OUT
    assert event.source is ConsentSource.KEYWORD and event.by_customer
    assert event.detail == "es:baja"
    item = user_preferences_item("34600000001", event)
    assert item == {
        "wa_id": "34600000001",
        "detail": "User requested to stop marketing messages",
        "category": "marketing_messages",
        "value": "stop",
        "timestamp": int(T0.timestamp()),
    }
    start = detect_keyword("START")
    assert start is not None
    resumed = user_preferences_item("1", keyword_event(start, T0, "c"))
    assert resumed["value"] == "resume"
    with pytest.raises(ValueError):
        user_preferences_item("1", ev(OPT_OUT, 0, category=Category.UTILITY))
