"""Structured (JSON) logs, each line carrying the request id of the request that caused it."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with extra= and is worth printing.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Control characters and line/paragraph separators: in a logged value (a path, a header, a
# subject) they could end the line and start a forged one.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What json.dumps leaves as is (it escapes the rest): escaped too, with JSON's own \\u escape.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")
# A record whose message is meant to span lines (the console email backend prints a whole
# message): its lines are kept, but each one after the first is marked as a continuation.
MULTILINE = "multiline"
_CONTINUATION = "\n    | "


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str) -> str:
    """`text` on one line: control characters escaped (CR becomes \\x0d)."""
    return _UNSAFE.sub(_escape_char, text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_") and key != MULTILINE
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # json.dumps escapes CR, LF and the other C0 controls inside every string; the C1
        # controls and U+2028/2029, which some viewers take for line breaks, are escaped here.
        line = json.dumps(entry, default=str, ensure_ascii=False)
        return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


class ConsoleFormatter(logging.Formatter):
    """Readable lines for a developer's terminal (the sign-in code must be easy to spot)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if getattr(record, MULTILINE, False):
            message = _CONTINUATION.join(safe(line) for line in message.split("\n"))
        else:
            message = safe(message)
        base = f"{record.levelname:<7} {record.name}: {message}"
        extras = _extras(record)
        request_id = request_id_var.get()
        if request_id:
            extras["request_id"] = request_id
        if extras:
            base += "  " + " ".join(f"{k}={safe(str(v))}" for k, v in extras.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def configure_logging(level: str = "INFO", *, json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_logs else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiosqlite", "asyncio", "google_genai", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
