"""Measure a triage provider against a labelled CSV file.

The CSV is read by `ticketing.triage.labelled.load_rows` (its columns are described there).

The metrics are small enough to write out here (no scikit-learn dependency for four formulas).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ticketing.skills import canonical_skill
from ticketing.triage.base import Analysis, TriageProvider
from ticketing.triage.labelled import LabelledRow
from ticketing.triage.local import LocalAnalyzer
from ticketing.triage.metrics import classification_metrics

_LOCAL_BATCH = 256


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
