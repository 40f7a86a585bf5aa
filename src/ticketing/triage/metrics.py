"""Classification scores shared by `ticketing eval` and the learned model's evaluation (kept
apart from both so neither imports the other)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# What a failed prediction counts as in the confusion matrix.
ERROR_LABEL = "(error)"


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
