"""Measure a triage provider against a labelled CSV file.

The CSV needs `title` and `description` (or `body`) plus any of the label columns
`ticket_type`, `priority` and `required_skills` (`;`-separated). The NLBSE'24 issue files carry a
`label` column instead (bug / feature / question); it is read as the ticket type when there is
no `ticket_type` column, with question -> support.

The metrics are small enough to write out here (no scikit-learn dependency for four formulas).
"""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticketing.skills import canonical_skill, normalise_skills
from ticketing.triage.base import Analysis, TriageProvider
from ticketing.triage.local import LocalAnalyzer
from ticketing.vocabulary import Priority, TicketType

# What a failed prediction is recorded as in confusion matrices. Not a class: it never counts
# as a false positive, only as a miss for the gold class.
ERROR_LABEL = "(error)"

_LABEL_TO_TYPE: dict[str, str] = {
    "bug": TicketType.bug.value,
    "feature": TicketType.feature.value,
    "enhancement": TicketType.feature.value,
    "question": TicketType.support.value,
}
_TYPES = {t.value for t in TicketType}
_LOCAL_BATCH = 256
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


def load_rows(path: str | Path, limit: int | None = None) -> list[LabelledRow]:
    """Read a labelled CSV. Raises ValueError for a missing column or a label outside the enums."""
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


def classification_metrics(gold: Sequence[str], predicted: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and a confusion matrix.

    Classes are the union of gold labels and predictions (a class the system invents but that
    never occurs in the gold data scores F1 = 0 and lowers the macro average, as it should);
    `macro_f1_gold_classes` averages over the gold classes only, for comparison with papers.
    A None prediction (the provider failed) is wrong and counts only as a miss.
    F1 of a class with no true positives is 0. `confusion[gold][predicted]` counts rows.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    classes = sorted(set(gold) | {p for p in predicted if p is not None})
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    per_class: dict[str, dict[str, float | int]] = {}
    for cls in classes:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == cls and p == cls)
        n_pred = sum(1 for p in predicted if p == cls)
        n_gold = sum(1 for g in gold if g == cls)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[cls] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": n_gold,
        }
    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold, predicted, strict=True):
        row = confusion.setdefault(g, {})
        key = p if p is not None else ERROR_LABEL
        row[key] = row.get(key, 0) + 1
    macro = sum(float(m["f1"]) for m in per_class.values()) / len(classes) if classes else 0.0
    gold_classes = sorted(set(gold))
    macro_gold = (
        sum(float(per_class[c]["f1"]) for c in gold_classes) / len(gold_classes)
        if gold_classes
        else 0.0
    )
    return {
        "n": len(gold),
        "accuracy": round(correct / len(gold), 4) if gold else 0.0,
        "macro_f1": round(macro, 4),
        # The same average over the gold classes only (how most published figures are quoted).
        "macro_f1_gold_classes": round(macro_gold, 4),
        "per_class": per_class,
        "confusion": {g: dict(sorted(row.items())) for g, row in sorted(confusion.items())},
    }


def skill_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str] | None]
) -> dict[str, Any]:
    """Exact-set accuracy plus micro- and macro-F1 over skill labels (compared by canonical form).

    Micro-F1 pools true/false positives and misses over all rows; macro-F1 averages the per-skill
    F1 over every skill in gold or predictions. A None prediction counts as predicting no skills.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    exact = 0
    for gold_row, pred_row in zip(gold, predicted, strict=True):
        g = {canonical_skill(s) for s in gold_row}
        p = {canonical_skill(s) for s in pred_row or ()}
        exact += g == p
        tp.update(g & p)
        fp.update(p - g)
        fn.update(g - p)

    def f1(t: int, f_pos: int, f_neg: int) -> float:
        return 2 * t / (2 * t + f_pos + f_neg) if t else 0.0

    labels = set(tp) | set(fp) | set(fn)
    macro = sum(f1(tp[s], fp[s], fn[s]) for s in labels) / len(labels) if labels else 0.0
    micro = f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {
        "n": len(gold),
        "accuracy": round(exact / len(gold), 4) if gold else 0.0,
        "macro_f1": round(macro, 4),
        "micro_f1": round(micro, 4),
    }


@dataclass
class EvalReport:
    """The outcome of one evaluation run."""

    n: int
    provider: str
    model: str | None
    errors: int
    seconds: float
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    predicted: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: run facts, then one entry per labelled field."""
        return {
            "n": self.n,
            "provider": self.provider,
            "model": self.model,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            **self.fields,
            "predicted": self.predicted,
        }


async def _predict_all(
    provider: TriageProvider,
    rows: Sequence[LabelledRow],
    known_skills: Sequence[str],
    on_progress: Callable[[], None] | None,
    concurrency: int,
) -> list[Analysis | None]:
    results: list[Analysis | None] = [None] * len(rows)
    if isinstance(provider, LocalAnalyzer):
        # No I/O: batches through the model, much faster than one task per row.
        for start in range(0, len(rows), _LOCAL_BATCH):
            chunk = rows[start : start + _LOCAL_BATCH]
            try:
                done = provider.analyze_many(
                    [(r.title, r.description) for r in chunk], known_skills
                )
            except Exception:  # a failing provider is a wrong prediction
                done = [None] * len(chunk)  # type: ignore[list-item]
            for j, analysis in enumerate(done):
                results[start + j] = analysis
                if on_progress is not None:
                    on_progress()
        return results

    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int, row: LabelledRow) -> None:
        async with semaphore:
            try:
                results[i] = await provider.analyze(row.title, row.description, known_skills)
            except Exception:  # any failure counts as a wrong prediction
                results[i] = None
        if on_progress is not None:
            on_progress()

    await asyncio.gather(*(one(i, row) for i, row in enumerate(rows)))
    return results


async def evaluate(
    provider: TriageProvider,
    rows: Sequence[LabelledRow],
    known_skills: Sequence[str],
    on_progress: Callable[[], None] | None = None,
    concurrency: int = 8,
) -> EvalReport:
    """Run `provider` over `rows` and score every field that has gold labels.

    `on_progress` is called once per finished row. A provider that raises for a row scores that
    row as wrong on every field and is counted in `errors`.
    """
    started = time.perf_counter()
    results = await _predict_all(provider, rows, known_skills, on_progress, concurrency)
    seconds = time.perf_counter() - started
    report = EvalReport(
        n=len(rows),
        provider=provider.name,
        model=provider.model,
        errors=sum(1 for r in results if r is None),
        seconds=seconds,
    )
    for name in ("ticket_type", "priority"):
        pairs = [
            (gold, None if r is None else str(getattr(r, name).value))
            for row, r in zip(rows, results, strict=True)
            if (gold := getattr(row, name)) is not None
        ]
        if pairs:
            report.fields[name] = classification_metrics(
                [g for g, _ in pairs], [p for _, p in pairs]
            )
    skill_pairs = [
        (row.required_skills, None if r is None else r.required_skills)
        for row, r in zip(rows, results, strict=True)
        if row.required_skills is not None
    ]
    if skill_pairs:
        report.fields["required_skills"] = skill_metrics(
            [g for g, _ in skill_pairs], [p for _, p in skill_pairs]
        )
    done = [r for r in results if r is not None]
    report.predicted = {
        "ticket_type": dict(Counter(r.ticket_type.value for r in done).most_common()),
        "priority": dict(Counter(r.priority.value for r in done).most_common()),
    }
    return report
