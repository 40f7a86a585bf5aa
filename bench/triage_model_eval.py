"""Measure the learned triage model on the NLBSE file: 5-fold CV and leave-one-repository-out.

    python bench/triage_model_eval.py ../shared/data/nlbse24-issues-train.csv [--c 10] [--rules]

Prints macro-F1 (gold classes) and per-class precision/recall/F1 for both splits. Folds are
stratified by label within each repository (seeded), so every fold sees every repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

from ticketing.triage.evaluation import classification_metrics
from ticketing.triage.learned import Example, VectoriserParams, train
from ticketing.triage.learned.model import _LABEL_TO_TYPE, _raise_field_size_limit


def memoise_features() -> None:
    """Hash each text once per run: folds re-fit idf and weights, not the n-grams."""
    from ticketing.triage.learned import features

    original = features._Hasher.counts
    memo: dict[tuple[str, str, str], tuple[dict[int, float], dict[int, float]]] = {}

    def counts(self: Any, title: str, description: str) -> Any:
        key = (repr(self.params), title, description)
        if key not in memo:
            memo[key] = original(self, title, description)
        return memo[key]

    features._Hasher.counts = counts  # type: ignore[method-assign]


def read_with_repo(path: str) -> list[tuple[str, Example]]:
    _raise_field_size_limit()
    with open(path, encoding="utf-8", newline="") as handle:
        return [
            (
                row["repo"],
                Example(row["title"], row["body"] or "", _LABEL_TO_TYPE[row["label"].strip()]),
            )
            for row in csv.DictReader(handle)
        ]


def folds(rows: list[tuple[str, Example]], k: int, seed: int) -> list[int]:
    """Fold number per row, stratified by (repository, label)."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (repo, ex) in enumerate(rows):
        groups[(repo, ex.ticket_type.value)].append(i)
    rng = random.Random(seed)
    out = [0] * len(rows)
    for key in sorted(groups):
        idx = groups[key]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            out[i] = j % k
    return out


def run(rows: list[tuple[str, Example]], splits: list[list[int]], **kw: Any) -> dict[str, Any]:
    gold: list[str] = []
    pred: list[str] = []
    n = len(rows)
    for test_idx in splits:
        test = set(test_idx)
        model = train([rows[i][1] for i in range(n) if i not in test], **kw)
        p = model.predict_many([(rows[i][1].title, rows[i][1].description) for i in test_idx])
        gold += [rows[i][1].ticket_type.value for i in test_idx]
        pred += [x.ticket_type.value for x in p]
    return classification_metrics(gold, pred)


def rules(rows: list[tuple[str, Example]]) -> dict[str, Any]:
    from ticketing.triage.local import DEFAULT_SKILL_VOCABULARY, LocalAnalyzer

    analyzer = LocalAnalyzer()
    pred = [
        analyzer.analyze_sync(e.title, e.description, DEFAULT_SKILL_VOCABULARY).ticket_type.value
        for _, e in rows
    ]
    return classification_metrics([e.ticket_type.value for _, e in rows], pred)


def show(name: str, m: dict[str, Any]) -> None:
    per = "  ".join(
        f"{c}: P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f}"
        for c, v in m["per_class"].items()
    )
    print(f"{name:>22}: macro-F1 {m['macro_f1_gold_classes']:.4f} acc {m['accuracy']:.4f} | {per}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--c", type=float, default=None)
    ap.add_argument("--params", default="{}", help="JSON overrides of VectoriserParams")
    ap.add_argument("--rules", action="store_true", help="also score the rules on the file")
    ap.add_argument("--only", choices=("cv", "repo"), default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    memoise_features()
    rows = read_with_repo(args.csv)
    params = replace(VectoriserParams(), **json.loads(args.params))
    kw: dict[str, Any] = {"params": params}
    if args.c is not None:
        kw["c"] = args.c
    result: dict[str, Any] = {"params": params.to_json(), "c": kw.get("c")}
    if args.rules:
        result["rules"] = rules(rows)
        show("rules (whole file)", result["rules"])
    if args.only in (None, "cv"):
        t = time.perf_counter()
        f = folds(rows, 5, seed=0)
        result["cv5"] = run(
            rows, [[i for i in range(len(rows)) if f[i] == k] for k in range(5)], **kw
        )
        show(f"5-fold CV ({time.perf_counter() - t:.0f}s)", result["cv5"])
    if args.only in (None, "repo"):
        repos = sorted({r for r, _ in rows})
        gold: list[str] = []
        pred: list[str] = []
        per_repo = {}
        t = time.perf_counter()
        for repo in repos:
            idx = [i for i, (r, _) in enumerate(rows) if r == repo]
            m = run(rows, [idx], **kw)
            per_repo[repo] = m
            show(f"held out {repo.split('/')[-1]}", m)
            for g, row in m["confusion"].items():
                for p, count in row.items():
                    gold += [g] * count
                    pred += [p] * count
        result["per_repo"] = per_repo
        result["leave_repo_out"] = classification_metrics(gold, pred)
        show(f"leave-repo-out ({time.perf_counter() - t:.0f}s)", result["leave_repo_out"])
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
