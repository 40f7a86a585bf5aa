"""Labelled tickets from a CSV file, for `ticketing eval` and for training the local model.

The CSV needs `title` and `description` (or `body`) plus any of the label columns
`ticket_type`, `priority` and `required_skills` (`;`-separated). The NLBSE'24 issue files carry a
`label` column instead (bug / feature / question); it is read as the ticket type when there is
no `ticket_type` column, with question -> support.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from ticketing.skills import normalise_skills
from ticketing.vocabulary import Priority, TicketType

_LABEL_TO_TYPE: dict[str, str] = {
    "bug": TicketType.bug.value,
    "feature": TicketType.feature.value,
    "enhancement": TicketType.feature.value,
    "question": TicketType.support.value,
}
_TYPES = {t.value for t in TicketType}
_PRIORITIES = {p.value for p in Priority}


@dataclass(frozen=True)
class LabelledRow:
    """One ticket with whichever gold labels the file has (None: not labelled)."""

    title: str
    description: str
    ticket_type: str | None = None
    priority: str | None = None
    required_skills: tuple[str, ...] | None = None


def _raise_field_size_limit() -> None:
    # Issue bodies with pasted logs exceed csv's 128 KiB default; find the platform's maximum.
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def _clean_label(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value or None


def load_rows(
    path: str | Path, limit: int | None = None, *, require_type: bool = False
) -> list[LabelledRow]:
    """Read a labelled CSV. Raises ValueError for a missing column or a label outside the enums.
    With `require_type` (training data), a file without a type column is an error."""
    _raise_field_size_limit()
    rows: list[LabelledRow] = []
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
        if "title" not in columns:
            raise ValueError(f"{path}: no 'title' column")
        body = columns.get("description") or columns.get("body")
        if body is None:
            raise ValueError(f"{path}: no 'description' or 'body' column")
        type_col = columns.get("ticket_type")
        label_col = columns.get("label") if type_col is None else None
        if require_type and type_col is None and label_col is None:
            raise ValueError(f"{path}: no 'ticket_type' or 'label' column")
        priority_col = columns.get("priority")
        skills_col = columns.get("required_skills")
        for line, raw in enumerate(reader, start=2):
            if limit is not None and len(rows) >= limit:
                break
            ticket_type = _clean_label(raw.get(type_col)) if type_col else None
            if label_col is not None:
                label = _clean_label(raw.get(label_col))
                if label is not None:
                    ticket_type = _LABEL_TO_TYPE.get(label, label)
            if ticket_type is not None and ticket_type not in _TYPES:
                raise ValueError(f"{path}:{line}: unknown ticket type {ticket_type!r}")
            priority = _clean_label(raw.get(priority_col)) if priority_col else None
            if priority is not None and priority not in _PRIORITIES:
                raise ValueError(f"{path}:{line}: unknown priority {priority!r}")
            skills: tuple[str, ...] | None = None
            if skills_col is not None:
                skills = tuple(normalise_skills((raw.get(skills_col) or "").split(";")))
            rows.append(
                LabelledRow(
                    title=raw.get(columns["title"]) or "",
                    description=raw.get(body) or "",
                    ticket_type=ticket_type,
                    priority=priority,
                    required_skills=skills,
                )
            )
    return rows
