"""How each message kind reads on screen: Rich text for the parts that are only read (the
buttons a customer can press are widgets, see widgets.py). Pure functions of the message, so
the same content always renders the same way."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text as RichText

from tidings.sdk.events import StoredMessage
from tidings.sdk.messages import (
    Contacts,
    Control,
    Header,
    Interactive,
    InteractiveReply,
    Location,
    Media,
    PaymentRequest,
    Reaction,
    Template,
    Text,
    Unsupported,
    find_links,
    parse,
)

TICKS = {"sending": "🕓", "sent": "✓", "delivered": "✓✓", "read": "✓✓"}
MEDIA_ICONS = {"image": "🖼", "video": "🎞", "audio": "🔊", "document": "📄", "sticker": "🏷"}


def clock_time(ts_ms: int, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz).strftime("%H:%M")


def ticks(message: StoredMessage) -> RichText:
    """Receipts as ticks on our own messages: 🕓 sending, ✓ sent, ✓✓ delivered, blue ✓✓ read."""
    if message.direction != "out":
        return RichText("")
    style = "bold dodger_blue1" if message.status == "read" else "dim"
    return RichText(TICKS.get(message.status, ""), style=style)


def with_links(body: str) -> RichText:
    """Text with its links underlined and clickable where the terminal supports it."""
    text = RichText(body)
    for link in find_links(body):
        start = body.find(link)
        while start != -1:
            text.stylize(f"underline link {link}", start, start + len(link))
            start = body.find(link, start + len(link))
    return text


def location_line(location: Location) -> RichText:
    label = " — ".join(p for p in (location.name, location.address) if p)
    url = f"https://www.openstreetmap.org/?mlat={location.latitude}&mlon={location.longitude}"
    line = RichText("📍 ")
    if label:
        line.append(label + "\n")
    line.append(f"{location.latitude:.5f}, {location.longitude:.5f}  ")
    line.append("map", style=f"underline link {url}")
    return line


def media_line(media: Media) -> RichText:
    icon = MEDIA_ICONS.get(media.kind, "📎")
    name = media.filename or media.kind
    line = RichText(f"{icon} {name}")
    if media.mime_type:
        line.append(f"  ({media.mime_type})", style="dim")
    if media.voice:
        line.append("  voice message", style="dim")
    if media.descriptor is None:
        line.append("  — the file did not arrive", style="red")
    if media.caption:
        line.append("\n")
        line.append_text(with_links(media.caption))
    return line


def header_lines(header: Header | None) -> RichText | None:
    if header is None:
        return None
    if header.text:
        return RichText(header.text, style="bold")
    if header.media:
        return media_line(header.media)
    if header.location:
        return location_line(header.location)
    return None


def body_text(message: StoredMessage, quoted: StoredMessage | None = None) -> RichText:
    """Everything a message says, as text (its buttons are rendered separately)."""
    parsed = parse(message.content)
    out = RichText()
    if parsed.quote is not None and not isinstance(parsed.body, Reaction):
        quoted_text = _quote_preview(quoted) if quoted else "(a message not on this device)"
        out.append("│ ", style="dim")
        out.append(quoted_text[:80] + "\n", style="dim italic")
    body = parsed.body
    if isinstance(body, Text):
        out.append_text(with_links(body.body))
    elif isinstance(body, Media):
        out.append_text(media_line(body))
    elif isinstance(body, Location):
        out.append_text(location_line(body))
    elif isinstance(body, Contacts):
        for index, contact in enumerate(body.contacts):
            if index:
                out.append("\n")
            out.append(f"👤 {contact.name}", style="bold")
            for value in (*contact.phones, *contact.emails):
                out.append(f"\n   {value}")
    elif isinstance(body, Reaction):
        out.append(f"reacted {body.emoji}" if body.emoji else "removed a reaction", style="dim")
    elif isinstance(body, Interactive | Template):
        _rich_message(out, body)
    elif isinstance(body, InteractiveReply):
        out.append("↩ ", style="dim")
        out.append(body.title, style="bold")
        if body.description:
            out.append(f"\n{body.description}", style="dim")
    elif isinstance(body, PaymentRequest):
        out.append("💳 Payment request", style="bold")
        for detail in (body.amount, body.description, body.reference):
            if detail:
                out.append(f"\n{detail}")
    elif isinstance(body, Control):
        out.append(f"⚙ {body.summary}", style="italic")
    elif isinstance(body, Unsupported):
        out.append(
            f"This {body.kind!r} message cannot be shown by this version of Tidings.",
            style="italic dim",
        )
    return out


def _rich_message(out: RichText, body: Interactive | Template) -> None:
    header = header_lines(body.header)
    if header is not None:
        out.append_text(header)
        out.append("\n")
    out.append_text(with_links(body.body))
    if body.footer:
        out.append(f"\n{body.footer}", style="dim")
    if isinstance(body, Interactive) and body.kind == "location_request_message":
        out.append("\n📍 The business asks for your location", style="italic")


def _quote_preview(quoted: StoredMessage) -> str:
    from tidings.sdk.messages import preview

    return preview(quoted.content).replace("\n", " ")
