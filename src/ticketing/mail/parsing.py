"""One raw message from the mailbox, read into what the email channel decides on.

The standard library's `email` package (`policy.default`) does the MIME work. Two libraries do
what it does not:
- inscriptis (Apache-2.0) turns an HTML-only message into text that keeps its layout (paragraphs,
  lists, table cells), and drops scripts and styles;
- mail-parser-reply (MIT) finds where a reply's quoted history begins ("On ... wrote:",
  Outlook's "From:/Sent:" block, "-----Original Message-----", in 13 languages) and its
  signature. Its regular expressions are slow on hostile input (nested quantifiers over long
  lines and runs of blank lines), so it only ever sees a bounded text: see `strip_reply`.

`parse_email` never raises anything but `UnreadableEmail`: a message that cannot be read is
recorded as rejected with that reason, and never stops the mailbox.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

import charset_normalizer
import inscriptis
from mailparser_reply.parser import EmailMessage as ReplyMessage

# How many MIME parts a message may have before it is refused as unreadable (a MIME bomb).
MAX_PARTS = 2000
MAX_DEPTH = 30
# HTML beyond this is not turned into text (inscriptis takes ~1 s per MB; a ticket keeps 20,000
# characters of it at most anyway).
MAX_HTML_CHARS = 1_000_000
# The reply parser reads at most this much text (a comment is at most 20,000 characters).
REPLY_SCAN_CHARS = 20_000
# Longer lines cannot be a reply header; they are hidden from the reply parser (its patterns are
# cubic in the line length), then put back.
REPLY_MAX_LINE = 200
# A "signature" longer than this is content that happens to follow a closing word ("Thanks,").
SIGNATURE_MAX_LINES = 8
MAX_IDS = 100
MAX_ADDRESSES = 100
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "ja", "ko", "zh"]

_ID_RE = re.compile(r"<([^<>\s\x00-\x1f\x7f]{1,900})>")
_BARE_ID_RE = re.compile(r"^[^<>\s@\x00-\x1f\x7f]+@[^<>\s@\x00-\x1f\x7f]+$")
# Controls, line and paragraph separators, and runs of whitespace: one space in a one-line field.
_ONE_LINE_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Controls that never belong in text (tabs and newlines stay).
_TEXT_CONTROLS_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUN_RE = re.compile(r"\n(?:[ \t]*\n){2,}")
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_BOUNCE_SENDERS = {"mailer-daemon", "postmaster"}


@dataclass(frozen=True)
class IncomingAttachment:
    filename: str  # a safe display name (no path), never empty ("attachment" if none)
    content_type: str  # lower-case type/subtype
    data: bytes
    inline: bool  # an inline image (has Content-ID / disposition inline), not an attached file


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None  # normalised "<id@host>", or None when missing/garbage
    in_reply_to: list[str]  # normalised Message-IDs
    references: list[str]  # normalised Message-IDs, in header order
    from_address: str | None  # lower-cased addr-spec of From (None if unusable)
    from_name: str | None
    to_addresses: list[str]  # lower-cased addr-specs of To + Cc + Delivered-To
    subject: str  # decoded, one line (controls/line breaks collapsed), may be ""
    text: str  # the text/plain part, else the HTML part turned into text
    reply_text: str  # `text` without quoted history and signature (what a reply adds)
    attachments: list[IncomingAttachment]
    auto_reason: str | None  # why this is automatic mail or a bounce, else None
    size: int  # bytes of the raw message


class UnreadableEmail(Exception):
    """The message cannot be parsed into a ParsedEmail; str(exc) is a short reason for the log."""


def parse_email(raw: bytes, *, max_attachments: int = 100) -> ParsedEmail:
    """Read one raw message (RFC 5322 bytes).

    Text in an unknown or wrong charset is decoded with a guess or with replacement characters
    rather than refused. A message with more than `max_attachments` attachments is refused as a
    whole (`UnreadableEmail("too many attachments (1000 > 100)")`): keeping the first N would
    file a ticket that silently lacks what its sender sent, and such mail is nearly always abuse.
    """
    try:
        return _parse(raw, max_attachments)
    except UnreadableEmail:
        raise
    except RecursionError as exc:
        raise UnreadableEmail("unreadable: MIME structure nested too deeply") from exc
    except Exception as exc:  # the parser's promise: one reason, never a crash
        raise UnreadableEmail(f"unreadable: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _parse(raw: bytes, max_attachments: int) -> ParsedEmail:
    if not raw.strip():
        raise UnreadableEmail("empty message")
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    if not msg.keys():
        raise UnreadableEmail("no headers: not an email message")

    from_address, from_name = _from(msg)
    parts = _walk(msg)
    text, attachment_parts = _classify_parts(parts)
    if len(attachment_parts) > max_attachments:
        raise UnreadableEmail(f"too many attachments ({len(attachment_parts)} > {max_attachments})")
    return ParsedEmail(
        message_id=_message_id(_raw_header(msg, "Message-ID")),
        in_reply_to=_message_ids(_raw_header(msg, "In-Reply-To")),
        references=_message_ids(_raw_header(msg, "References")),
        from_address=from_address,
        from_name=from_name,
        to_addresses=_addresses(msg, ("To", "Cc", "Delivered-To")),
        subject=one_line(_header_text(msg, "Subject")),
        text=text,
        reply_text=strip_reply(text),
        attachments=[_attachment(part, ctype) for part, ctype in attachment_parts],
        auto_reason=_auto_reason(msg, parts, from_address),
        size=len(raw),
    )


# --- headers ---------------------------------------------------------------------------------


def one_line(value: str) -> str:
    """`value` on one line: controls, line breaks and runs of whitespace become one space."""
    return _ONE_LINE_RE.sub(" ", value).strip()


def _raw_header(msg: Message, name: str) -> str:
    """Every occurrence of a header as its raw text (unfolded), for Message-IDs and flags."""
    values = [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]
    return " ".join(values).replace("\r", " ").replace("\n", " ")


def _header_text(msg: Message, name: str) -> str:
    """A header decoded (RFC 2047); its raw text when decoding fails."""
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except Exception:
        return _raw_header(msg, name)


def _message_id(value: str) -> str | None:
    found = _message_ids(value)
    if found:
        return found[0]
    value = value.strip()
    # Some senders leave out the angle brackets.
    return f"<{value}>" if _BARE_ID_RE.match(value) and len(value) <= 900 else None


def _message_ids(value: str) -> list[str]:
    ids: list[str] = []
    for match in _ID_RE.finditer(value):
        mid = f"<{match.group(1)}>"
        if "@" in mid and mid not in ids:
            ids.append(mid)
    if len(ids) > MAX_IDS:  # keep the thread's root and its most recent messages
        ids = ids[:1] + ids[-(MAX_IDS - 1) :]
    return ids


def _clean_address(addr: str) -> str | None:
    addr = addr.strip().lower()
    if not addr or len(addr) > 320 or addr.count("@") != 1 or _ONE_LINE_RE.search(addr):
        return None
    local, domain = addr.split("@")
    return addr if local and domain else None


def _from(msg: Message) -> tuple[str | None, str | None]:
    try:
        header = msg.get("From")
        addresses = getattr(header, "addresses", ()) if header is not None else ()
        if addresses:
            name, addr = addresses[0].display_name, addresses[0].addr_spec
        else:
            name, addr = parseaddr(_raw_header(msg, "From"))
    except Exception:
        name, addr = parseaddr(_raw_header(msg, "From"))
    address = _clean_address(addr)
    display = one_line(name)[:200] or None
    return address, display


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in names:
        try:
            values = [str(v) for v in msg.get_all(name, [])]
        except Exception:
            values = [_raw_header(msg, name)]
        for _display, addr in getaddresses(values):
            clean = _clean_address(addr)
            if clean is not None and clean not in found:
                found.append(clean)
            if len(found) >= MAX_ADDRESSES:
                return found
    return found


def _auto_reason(msg: Message, parts: list[Part], from_address: str | None) -> str | None:
    """Why this message is automatic or a bounce (RFC 3834 and common practice), else None."""
    auto_submitted = one_line(_raw_header(msg, "Auto-Submitted")).lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto_submitted[:100]}"
    precedence = one_line(_raw_header(msg, "Precedence")).lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.get(name) is not None or _raw_header(msg, name):
            return f"{name} header"
    if from_address is not None and from_address.split("@")[0] in _BOUNCE_SENDERS:
        return f"bounce: sent by {from_address}"
    if _raw_header(msg, "Return-Path").strip() == "<>":
        return "bounce: empty Return-Path"
    if parts[0][1] == "multipart/report":
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if report_type == "delivery-status":
            return "bounce: delivery status report"
    for _part, ctype in parts:
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            return "bounce: delivery status report"
    return None


# --- MIME parts ------------------------------------------------------------------------------


# A MIME part and its content type, read once (policy.default parses a header at each access).
Part = tuple[Message, str]


def _walk(msg: Message) -> list[Part]:
    """Every part, depth first, without descending into attached messages; bounded."""
    parts: list[Part] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        ctype = part.get_content_type().lower()
        parts.append((part, ctype))
        if len(parts) > MAX_PARTS:
            raise UnreadableEmail(f"too many MIME parts (over {MAX_PARTS})")
        if depth > MAX_DEPTH:
            raise UnreadableEmail(f"MIME parts nested deeper than {MAX_DEPTH}")
        if ctype.startswith("multipart/") and part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(
                    (child, depth + 1) for child in reversed(children) if isinstance(child, Message)
                )
    return parts


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or _safe_filename(part) is not None


def _classify_parts(parts: list[Part]) -> tuple[str, list[Part]]:
    """The message's text (its plain parts, else its HTML parts as text), and its attachments."""
    plain: list[str] = []
    html: list[Message] = []
    attachments: list[Part] = []
    for part, ctype in parts:
        if ctype.startswith("multipart/") and part.is_multipart():
            continue
        if ctype not in ("text/plain", "text/html") or _is_attachment(part):
            if ctype == "message/rfc822" or not part.is_multipart():
                attachments.append((part, ctype))
            continue
        if ctype == "text/plain":
            plain.append(_decoded_text(part))
        else:
            html.append(part)
    # multipart/alternative offers the same text twice: plain wins, HTML only when there is no
    # plain text at all, or the plain text is empty (some clients send an empty plain part).
    if not any(text.strip() for text in plain):
        plain = [_html_to_text(_decoded_text(part)) for part in html]
    return _join_texts(plain), attachments


def _decode(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part as text: its charset, else a guess, else UTF-8 with replacements."""
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = None
    if charset:
        try:
            return payload.decode(charset)
        except UnicodeDecodeError:
            pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guess = charset_normalizer.from_bytes(payload[:100_000]).best()
    if guess is not None and guess.encoding:
        return payload.decode(guess.encoding, errors="replace")
    return payload.decode(charset or "utf-8", errors="replace")


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = _decode(payload, part.get_content_charset())
    return _TEXT_CONTROLS_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _html_to_text(html: str) -> str:
    try:
        return str(inscriptis.get_text(html[:MAX_HTML_CHARS]))
    except Exception:  # lxml refuses some documents (empty, only a declaration, ...)
        return ""


def _join_texts(texts: list[str]) -> str:
    cleaned = ["\n".join(line.rstrip() for line in t.split("\n")).strip("\n") for t in texts]
    return "\n\n".join(t for t in cleaned if t.strip()).strip()


_PATH_SEPARATORS = re.compile(r"[\\/]")


def _safe_filename(part: Message) -> str | None:
    """The part's file name (RFC 2231 and RFC 2047 decoded) as a safe display name, or None."""
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        return None
    name = one_line(_PATH_SEPARATORS.split(str(name))[-1]).strip(". ")
    return name[:200] or None


def _attachment(part: Message, ctype: str) -> IncomingAttachment:
    if ctype == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        data = inner.as_bytes(policy=policy.SMTP) if isinstance(inner, Message) else b""
        default_name = "message.eml"
    else:
        decoded = part.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else b""
        default_name = "attachment"
    disposition = (part.get_content_disposition() or "").lower()
    inline = (
        ctype.startswith("image/")
        and disposition != "attachment"
        and (disposition == "inline" or part.get("Content-ID") is not None)
    )
    return IncomingAttachment(
        filename=_safe_filename(part) or default_name,
        content_type=ctype,
        data=data,
        inline=inline,
    )


# --- what a reply adds -----------------------------------------------------------------------


def strip_reply(text: str) -> str:
    """`text` without the quoted history below it and without a closing signature.

    The reply parser sees at most REPLY_SCAN_CHARS characters, runs of blank lines collapsed,
    and lines longer than REPLY_MAX_LINE replaced by placeholders (put back afterwards), which
    bounds its time on any input. Lines quoted with ">" that remain (an inline or bottom-posted
    reply) are dropped. A signature is removed only when it looks like one (`_is_signature`).
    Whenever stripping would leave nothing, the text is kept as it is.
    """
    whole = text.strip()
    if not whole:
        return ""
    scanned = _BLANK_RUN_RE.sub("\n\n", whole[:REPLY_SCAN_CHARS])
    long_lines: dict[str, str] = {}
    lines = []
    for line in scanned.split("\n"):
        if len(line) > REPLY_MAX_LINE:
            token = f"\ue000{len(long_lines)}\ue001"
            long_lines[token] = line
            line = token
        lines.append(line)
    try:
        parsed = ReplyMessage(
            text="\n".join(lines), languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True
        ).read()
    except Exception:
        return whole
    if not parsed.replies:
        return whole
    reply = parsed.replies[0]
    body = reply.body if _is_signature(reply.signatures) else reply.full_body
    # The parser strips every line; where its answer is the text's first lines, take those
    # lines as they were (indentation of pasted code and logs kept).
    body = _original_prefix(lines, body) or body
    unquoted = "\n".join(line for line in body.split("\n") if not line.startswith(">"))
    if unquoted.strip():
        body = _BLANK_RUN_RE.sub("\n\n", unquoted)
    for token, line in long_lines.items():
        body = body.replace(token, line)
    return body.strip() or whole


def _is_signature(block: str) -> bool:
    """Whether what the parser took for a signature is one: a short block that starts with a
    delimiter ("-- ", "Sent from my ...") or with a closing of a few words ("Best regards,",
    "Thanks, Jane"), not a sentence that happens to start with "Thanks," and goes on."""
    lines = block.strip().split("\n")
    if not block.strip() or len(lines) > SIGNATURE_MAX_LINES:
        return False
    first = lines[0].lstrip("> ").strip()
    return first.startswith(("--", "__")) or len(first.split()) <= 3 or len(lines) == 1


def _original_prefix(lines: list[str], stripped: str) -> str | None:
    """The first lines of `lines` whose stripped text is `stripped`, or None if not a prefix."""
    wanted = stripped.split("\n")
    if len(wanted) > len(lines):
        return None
    for line, want in zip(lines, wanted, strict=False):
        if line.strip() != want:
            return None
    return "\n".join(lines[: len(wanted)])
