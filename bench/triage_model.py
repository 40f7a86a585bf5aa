"""The learned local triage model: speed on one core and the memory it adds to a process.

    .venv/bin/python -m bench.triage_model [--csv ../shared/data/nlbse24-issues-train.csv]

Speed: tickets per second through `LocalAnalyzer.analyze_many` (what `ticketing eval` runs)
with the learned model, against the rules alone in the same run, plus the model's own
`predict_many`; one thread (BLAS pinned to 1), tickets per CPU second (process time, so a
loaded machine does not distort it), best of `--repeat` passes over the file; the first,
cold pass (empty n-gram caches) is reported too.

Memory: the VmRSS of a fresh process that imported the API app (`ticketing.app.create_app`
module and the local analyzer, rules only) before and after it loads the shipped model and
predicts once, i.e. what loading the model (numpy, scipy, the arrays) adds to an API process.
Three runs each, median. Markdown on stdout; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nlbse24-issues-train.csv"

_RSS_PROBE = r"""
import json, sys

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

import ticketing.app  # the API process's modules
from ticketing.triage.local import LocalAnalyzer
rules = LocalAnalyzer(use_model=False)
rules.analyze_sync("Login fails", "error on the sign-in page", ["python"])
before = rss_kb()
if sys.argv[1] == "model":
    from ticketing.triage.learned import default_model
    model = default_model()
    analyzer = LocalAnalyzer()
    analyzer.analyze_sync("Login fails", "error on the sign-in page", ["python"])
    assert analyzer.model_error is None, analyzer.model_error
print(json.dumps({"before_kb": before, "after_kb": rss_kb()}))
"""


def rss_probe(kind: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, kind], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_rate(fn, n: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Tickets per CPU second of this (single-threaded) process, best of `repeat` passes.

    CPU time rather than wall time: on a shared, loaded machine wall time measures the other
    processes; one thread's CPU time is what one core would deliver.
    """
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from ticketing.triage.labelled import load_rows
    from ticketing.triage.learned import default_model
    from ticketing.triage.local import DEFAULT_SKILL_VOCABULARY, LocalAnalyzer

    rows = load_rows(args.csv)
    items = [(r.title, r.description) for r in rows]
    known = list(DEFAULT_SKILL_VOCABULARY)
    rules = LocalAnalyzer(use_model=False)
    learned = LocalAnalyzer()
    model = default_model()
    # Warm-up: the model's per-word n-gram cache fills on first sight of a word; measured
    # passes below are over the same file, so report the cold first pass too.
    started = time.process_time()
    model.predict_many(items)
    cold = len(items) / (time.process_time() - started)

    rates = {
        "rules_analyzer": best_rate(
            lambda: rules.analyze_many(items, known), len(items), args.repeat
        ),
        "learned_analyzer": best_rate(
            lambda: learned.analyze_many(items, known), len(items), args.repeat
        ),
        "model_predict_many": best_rate(lambda: model.predict_many(items), len(items), args.repeat),
        "model_predict_many_cold": cold,
    }
    mem = {kind: [rss_probe(kind) for _ in range(3)] for kind in ("rules", "model")}
    growth = {
        kind: statistics.median((r["after_kb"] - r["before_kb"]) / 1024 for r in runs)
        for kind, runs in mem.items()
    }
    base = statistics.median(r["before_kb"] / 1024 for r in mem["model"])
    load = os.getloadavg()

    print(f"## Learned triage model ({len(items)} tickets from {args.csv.name})\n")
    print(f"Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| path | tickets per CPU second (one core) | vs rules |")
    print("| --- | ---: | ---: |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / rates['rules_analyzer']:.2f}x |")
    print("\n| process | RSS before (MB) | growth (MB) |")
    print("| --- | ---: | ---: |")
    print(f"| API modules, rules only | {base:.1f} | {growth['rules']:.1f} |")
    print(f"| API modules + shipped model loaded | {base:.1f} | {growth['model']:.1f} |")
    print(
        json.dumps(
            {
                "n": len(items),
                "tickets_per_second": {k: round(v, 1) for k, v in rates.items()},
                "rss_base_mb": round(base, 1),
                "rss_growth_mb": {k: round(v, 1) for k, v in growth.items()},
                "loadavg": load,
            }
        )
    )


if __name__ == "__main__":
    main()
