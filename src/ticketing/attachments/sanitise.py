"""What a client says about a file (its name and its type), made safe to keep, show and serve.

A client's file name is only ever shown and offered back as a download name: storage names
files by their hash (see storage.py), so nothing here has to make a name safe as a path. It
still loses any directory part, so that nobody is shown `../../etc/passwd` as a name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

OCTET_STREAM = "application/octet-stream"
MAX_FILENAME_CHARS = 200  # the column holds 255; room for what a person can read anyway
MAX_EXTENSION_CHARS = 16  # kept when a long name is shortened
FALLBACK_NAME = "file"

# Line and paragraph breaks and tabs inside a name become a space; other controls, format
# characters (bidi overrides that make `exe.txt` read as `txt.exe`), surrogates, private-use
# and unassigned code points are dropped.
_SPACE_LIKE = frozenset({"Zl", "Zp", "Zs"})
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_BREAKS = frozenset("\t\n\r\x0b\x0c\x85")

# RFC 6838 restricted-name, for both halves of type/subtype.
_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_NAME}/{_NAME}")
# Types a browser never runs or renders as a document: served as stored. Every other text/*
# type, multipart/* and message/* (MHTML) and anything naming markup or script in its subtype
# (html, xhtml+xml, svg+xml, xml, xsl, javascript, ecmascript, x-shockwave-flash) is served as
# application/octet-stream.
_INERT_TEXT = frozenset({"text/plain", "text/csv"})
_ACTIVE_WORDS = ("html", "xml", "svg", "xsl", "script", "flash")
# What may stand in the quoted ASCII fallback of Content-Disposition: no quote, backslash,
# percent sign or semicolon, which some clients read as syntax.
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9 !#$&'()+,\-.=@\[\]^_`{}~]")


def display_filename(raw: str | None, *, fallback: str = FALLBACK_NAME) -> str:
    """The name to keep and show for a file a client named `raw`.

    The last path segment only (`/` and `\\` both separate), NFC, no control or invisible
    characters, single spaces, no leading or trailing dots and spaces, at most
    MAX_FILENAME_CHARS characters (the extension kept); any other Unicode is kept as it is.
    """
    name = unicodedata.normalize("NFC", raw or "")
    kept: list[str] = []
    for char in re.split(r"[/\\]", name)[-1]:
        category = unicodedata.category(char)
        if char in _BREAKS or category in _SPACE_LIKE:
            kept.append(" ")
        elif category not in _DROPPED:
            kept.append(char)
    name = " ".join("".join(kept).split()).strip(" .")
    if not name:
        return fallback
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= MAX_EXTENSION_CHARS:
            room = MAX_FILENAME_CHARS - len(extension) - 1
            name = f"{stem[:room].rstrip(' .')}.{extension}"
        else:
            name = name[:MAX_FILENAME_CHARS].rstrip(" .")
    return name


def stored_content_type(raw: str | None) -> str:
    """`type/subtype` of what a client declared, lower-cased and without parameters, when it
    is syntactically a media type (RFC 6838); otherwise application/octet-stream."""
    essence = (raw or "").split(";", 1)[0].strip().lower()
    return essence if _MEDIA_TYPE.fullmatch(essence) else OCTET_STREAM


def served_content_type(stored: str) -> str:
    """The Content-Type a download is sent with: the stored type, unless a browser could run
    it or render it as a page (HTML, SVG, XML, script, ...): then application/octet-stream."""
    main, _, sub = stored.partition("/")
    if main == "text":
        return stored if stored in _INERT_TEXT else OCTET_STREAM
    if main in ("multipart", "message"):
        return OCTET_STREAM
    if any(word in sub for word in _ACTIVE_WORDS):
        return OCTET_STREAM
    return stored


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice (RFC 6266): an ASCII fallback for old clients, and the
    exact name as RFC 5987 `filename*=UTF-8''...`."""
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, ""
    ascii_stem, ascii_extension = _ascii(stem) or "download", _ascii(extension)
    fallback = f"{ascii_stem}.{ascii_extension}" if ascii_extension else ascii_stem
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _ascii(text: str) -> str:
    """`text` in plain ASCII: accents dropped, anything else unsafe in a quoted string as `_`."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(_UNSAFE_ASCII.sub("_", text).split()).strip(" .")
