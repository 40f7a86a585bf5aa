"""Strict parsing of a model's answer into an `Analysis`.

Model output is untrusted input (a ticket can carry a prompt injection), so this accepts one
JSON object with the four expected fields and nothing looser: no "find the JSON somewhere in
the prose", no guessing at enum synonyms. Unknown fields are dropped, never passed on.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from ticketing.skills import MAX_SKILL_LENGTH, MAX_SKILLS, normalise_skills
from ticketing.triage.base import MAX_NOTES_CHARS, Analysis, TriageError
from ticketing.vocabulary import Priority, TicketType

# Far above any honest answer to this prompt; stops us parsing megabytes of junk.
MAX_ANSWER_CHARS = 64_000

# The whole answer wrapped in one Markdown fence (some OpenAI-compatible servers do this).
_FENCE = re.compile(r"\A```(?:json)?[ \t]*\r?\n(?P<body>.*?)\r?\n?```\Z", re.DOTALL | re.IGNORECASE)


def _show(value: object) -> str:
    """A short repr for error messages (the value came from the model; keep it small)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _decode(raw: str | bytes) -> Mapping[str, Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TriageError("answer is not valid UTF-8") from exc
    if len(raw) > MAX_ANSWER_CHARS:
        raise TriageError(f"answer is too long ({len(raw)} characters)")
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced["body"].strip()
    if not text:
        raise TriageError("answer is empty")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TriageError(f"answer is not JSON: {_show(text)}") from exc
    if not isinstance(data, dict):
        raise TriageError(f"answer is not a JSON object but {type(data).__name__}")
    return data


def _enum_field(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    if key not in data:
        raise TriageError(f"{key} is missing")
    value = data[key]
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise TriageError(f"{key} {_show(value)} is not one of {', '.join(allowed)}")
    return value.strip().lower()


def _skills(data: Mapping[str, Any]) -> list[str]:
    if "required_skills" not in data:
        raise TriageError("required_skills is missing")
    value = data["required_skills"]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TriageError("required_skills is not a list of strings")
    kept: list[str] = []
    for item in value:
        collapsed = " ".join(item.split())
        # Over-long names are prose, not skills; control/format characters are never skills.
        if len(collapsed) > MAX_SKILL_LENGTH:
            continue
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in collapsed):
            continue
        kept.append(collapsed)
    skills: list[str] = normalise_skills(kept, limit=MAX_SKILLS)
    return skills


def _notes(data: Mapping[str, Any]) -> str:
    value = data.get("helpful_notes")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TriageError("helpful_notes is not a string")
    return value.strip()[:MAX_NOTES_CHARS]


def parse_analysis(raw: str | bytes | Mapping[str, Any]) -> Analysis:
    """Validate a model's answer (JSON text, bytes, or an already decoded object).

    Raises TriageError with a short reason on anything that is not a JSON object holding a
    valid `priority`, `ticket_type` and `required_skills` list (and an optional string
    `helpful_notes`). Skills come back lower-cased, trimmed, de-duplicated and capped; any
    field other than the four is ignored.
    """
    if isinstance(raw, str | bytes):
        data = _decode(raw)
    elif isinstance(raw, Mapping):
        data = raw
    else:
        raise TriageError(f"answer is not a JSON object but {type(raw).__name__}")
    return Analysis(
        priority=Priority(_enum_field(data, "priority", tuple(p.value for p in Priority))),
        ticket_type=TicketType(
            _enum_field(data, "ticket_type", tuple(t.value for t in TicketType))
        ),
        required_skills=_skills(data),
        helpful_notes=_notes(data),
    )
