"""The learned triage model: train, predict, store as arrays + JSON, load safely, evaluate.

A model is a hashed TF-IDF vectoriser (see `features`) and one multinomial logistic regression
per field: ticket type always, priority when there are enough priority labels (otherwise
`Prediction.priority` is None and callers keep their rules). Prediction is a sparse matrix
product and a softmax in numpy; scikit-learn is imported only to train.

Stored form: an .npz of plain numeric arrays (written and read with allow_pickle=False) plus a
JSON manifest (format version, classes, vectoriser parameters, library versions, array shapes,
sha256 of the bytes). `load` checks all of that before it builds anything and raises
`ModelLoadError` otherwise; nothing in a model file can execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ticketing.errors import ModelLoadError
from ticketing.triage.labelled import load_rows
from ticketing.triage.learned.features import (
    Vectoriser,
    VectoriserParams,
    n_rule_features,
    rule_matrix,
)
from ticketing.triage.metrics import classification_metrics
from ticketing.vocabulary import Priority, TicketType

FORMAT = "ticketing-triage-linear"
# 2: Fibonacci-hashed buckets, character n-grams of word tokens, optional rule features.
FORMAT_VERSION = 2
MIN_PRIORITY_LABELS = 20  # fewer priority labels than this: no priority classifier
DEFAULT_C = 10.0
# The shipped model (`ticketing model train --csv`): public issues from other projects, so the
# rules' type scores as features (they carry across projects: leave-one-repository-out 0.60 ->
# 0.69) and stronger regularisation. Models trained on an organisation's own labels keep the
# defaults (text only): with rule features a strong rule cue outvoted the organisation's own
# corrections (tests/test_triage_learning.py). See docs/triage.md.
SHIPPED_PARAMS = VectoriserParams(rule_features=True)
SHIPPED_C = 3.0
MAX_MODEL_BYTES = 64 * 1024 * 1024  # refuse to even open anything larger

_ARRAYS = (
    "columns",
    "idf",
    "type_coef",
    "type_intercept",
    "priority_coef",
    "priority_intercept",
)


@dataclass(frozen=True)
class Example:
    """One labelled ticket. `weight` scales its say in training (e.g. shipped data < staff's)."""

    title: str
    description: str
    ticket_type: TicketType
    priority: Priority | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Prediction:
    """What the model says; `confidence[field]` is the predicted class's probability (0..1)."""

    ticket_type: TicketType
    priority: Priority | None
    confidence: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Linear:
    classes: tuple[str, ...]
    coef: npt.NDArray[np.float32]  # (n_features, n_classes)
    intercept: npt.NDArray[np.float32]  # (n_classes,)

    def proba(self, x: sp.csr_matrix) -> npt.NDArray[np.float64]:
        scores = np.asarray(x @ self.coef, dtype=np.float64) + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores


# Single texts whose rows a model keeps (see TrainedModel._transform): more than a worker
# triages at once.
RECENT_ROWS = 64


class TrainedModel:
    """A trained (or loaded) model. Immutable after construction; safe to share across threads."""

    def __init__(
        self,
        vectoriser: Vectoriser,
        type_model: _Linear,
        priority_model: _Linear | None,
        *,
        labels: int,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self._vectoriser = vectoriser
        self._type = type_model
        self._priority = priority_model
        self.labels = labels
        self.meta = dict(meta or {})
        # The last few single texts' rows: a triage vectorises its ticket for the prompt's
        # examples and again for the confidence in the AI's answer, with other tickets' work
        # in between (the worker runs many at once).
        self._recent_rows: dict[tuple[str, str], sp.csr_matrix] = {}
        self._recent_lock = threading.Lock()

    @property
    def type_classes(self) -> tuple[str, ...]:
        return self._type.classes

    @property
    def priority_classes(self) -> tuple[str, ...]:
        return self._priority.classes if self._priority is not None else ()

    @property
    def version(self) -> str:
        """The first 12 hex digits of the stored bytes' sha256 (what tickets record)."""
        sha = self.meta.get("sha256")
        if not isinstance(sha, str):
            sha = self.to_bytes()[1]["sha256"]
            self.meta["sha256"] = sha
        return sha[:12]

    @property
    def has_priority(self) -> bool:
        return self._priority is not None

    def vectorise(self, texts: Sequence[tuple[str, str]] | Sequence[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows of (title, description) pairs or plain strings (as bodies).

        Rows of two texts dot to their cosine similarity.
        """
        pairs = [(t, "") if isinstance(t, str) else (t[0], t[1]) for t in texts]
        # A plain string is treated as the title: it is what the learning side compares.
        return self._transform(pairs)

    def _transform(self, pairs: Sequence[tuple[str, str]]) -> sp.csr_matrix:
        """The vectoriser's rows; one text's row is kept a while (callers never modify it)."""
        if len(pairs) != 1:
            return self._vectoriser.transform(pairs)
        key = pairs[0]
        with self._recent_lock:
            row = self._recent_rows.get(key)
        if row is None:
            row = self._vectoriser.transform(pairs)
            with self._recent_lock:
                if len(self._recent_rows) >= RECENT_ROWS:
                    del self._recent_rows[next(iter(self._recent_rows))]  # the oldest
                self._recent_rows[key] = row
        return row

    def _design(
        self,
        pairs: Sequence[tuple[str, str]],
        rule_scores: Sequence[Sequence[float]] | None = None,
    ) -> sp.csr_matrix:
        x = self._transform(pairs)
        if not self._vectoriser.params.rule_features:
            return x
        rules = rule_matrix(self._vectoriser.params, pairs, rule_scores)
        return sp.hstack([x, rules], format="csr")

    def predict(self, title: str, description: str) -> Prediction:
        return self.predict_many([(title, description)])[0]

    def predict_many(
        self,
        items: Iterable[tuple[str, str]],
        *,
        rule_scores: Sequence[Sequence[float]] | None = None,
    ) -> list[Prediction]:
        """Predict a batch. `rule_scores`: the rules' type scores of each item when the caller
        has them already (the local analyzer); computed here otherwise."""
        pairs = list(items)
        if not pairs:
            return []
        x = self._design(pairs, rule_scores)
        type_p = self._type.proba(x)
        type_idx = type_p.argmax(axis=1)
        prio_p = self._priority.proba(x) if self._priority is not None else None
        prio_idx = prio_p.argmax(axis=1) if prio_p is not None else None
        out: list[Prediction] = []
        for i in range(len(pairs)):
            confidence = {"ticket_type": round(float(type_p[i, type_idx[i]]), 4)}
            priority: Priority | None = None
            if prio_p is not None and prio_idx is not None and self._priority is not None:
                priority = Priority(self._priority.classes[prio_idx[i]])
                confidence["priority"] = round(float(prio_p[i, prio_idx[i]]), 4)
            out.append(
                Prediction(
                    ticket_type=TicketType(self._type.classes[type_idx[i]]),
                    priority=priority,
                    confidence=confidence,
                )
            )
        return out

    def class_probabilities(self, title: str, description: str) -> dict[str, dict[str, float]]:
        """Every class's probability per field ({"ticket_type": {...}, "priority": {...}}):
        what the confidence in another provider's answer is read from."""
        x = self._design([(title, description)])
        type_p = self._type.proba(x)[0].tolist()
        out = {"ticket_type": dict(zip(self._type.classes, type_p, strict=True))}
        if self._priority is not None:
            prio_p = self._priority.proba(x)[0].tolist()
            out["priority"] = dict(zip(self._priority.classes, prio_p, strict=True))
        return out

    def to_bytes(self) -> tuple[bytes, dict[str, Any]]:
        """The model as .npz bytes (numeric arrays only) and its JSON-able manifest."""
        n_features = self._vectoriser.n_features
        if self._priority is not None:
            prio_coef, prio_b = self._priority.coef, self._priority.intercept
        else:
            rows = n_features + n_rule_features(self._vectoriser.params)
            prio_coef = np.zeros((rows, 0), dtype=np.float32)
            prio_b = np.zeros((0,), dtype=np.float32)
        arrays: dict[str, npt.NDArray[Any]] = {
            "columns": self._vectoriser.columns.astype(np.int64),
            "idf": self._vectoriser.idf.astype(np.float32),
            "type_coef": self._type.coef.astype(np.float32),
            "type_intercept": self._type.intercept.astype(np.float32),
            "priority_coef": prio_coef.astype(np.float32),
            "priority_intercept": prio_b.astype(np.float32),
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        data = buffer.getvalue()
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "labels": self.labels,
            "type_classes": list(self._type.classes),
            "priority_classes": list(self.priority_classes),
            "n_features": n_features,
            "vectoriser": self._vectoriser.params.to_json(),
            "arrays": {name: [list(a.shape), str(a.dtype)] for name, a in arrays.items()},
            "versions": _versions(),
            **{k: v for k, v in self.meta.items() if k not in _RESERVED_MANIFEST_KEYS},
        }
        return data, manifest


_RESERVED_MANIFEST_KEYS = frozenset(
    {
        "format",
        "format_version",
        "sha256",
        "size",
        "labels",
        "type_classes",
        "priority_classes",
        "n_features",
        "vectoriser",
        "arrays",
        "versions",
    }
)


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        from importlib.metadata import version

        out["ticketing"] = version("ticketing")
    except Exception:  # not installed as a distribution (source tree)
        out["ticketing"] = "unknown"
    return out


# ---------------------------------------------------------------- training


def _fit_linear(
    x: sp.csr_matrix,
    y: Sequence[str],
    weights: npt.NDArray[np.float64],
    *,
    c: float,
    seed: int,
) -> _Linear:
    from sklearn.linear_model import LogisticRegression

    classes = tuple(sorted(set(y)))
    if len(classes) < 2:
        # One class only: predict it with certainty (zero weights, one column).
        n = x.shape[1]
        return _Linear(
            classes, np.zeros((n, 1), dtype=np.float32), np.zeros((1,), dtype=np.float32)
        )
    # Balanced class weights, folded into the sample weights so both combine.
    counts = Counter(y)
    per_class = {k: len(y) / (len(classes) * counts[k]) for k in classes}
    sample_weight = weights * np.asarray([per_class[label] for label in y])
    clf = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    clf.fit(x, np.asarray(y), sample_weight=sample_weight)
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: softmax over [0, z] is the logistic of z
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros(1), intercept])
    learned = tuple(str(label) for label in clf.classes_)
    return _Linear(learned, coef.T.astype(np.float32).copy(), intercept.astype(np.float32))


def train(
    examples: Sequence[Example],
    *,
    seed: int = 0,
    params: VectoriserParams | None = None,
    c: float = DEFAULT_C,
    priority_c: float | None = None,
) -> TrainedModel:
    """Train on `examples` (needs at least one; type always, priority when labels allow).

    Priority is learned only with at least MIN_PRIORITY_LABELS priority labels over two or
    more values; otherwise `Prediction.priority` is None. Deterministic for a given seed.
    """
    if not examples:
        raise ValueError("no examples to train on")
    params = params or VectoriserParams()
    texts = [(e.title, e.description) for e in examples]
    vectoriser, x = Vectoriser.fit(params, texts)
    if params.rule_features:
        x = sp.hstack([x, rule_matrix(params, texts)], format="csr")
    weights = np.asarray([max(0.0, float(e.weight)) for e in examples], dtype=np.float64)
    type_model = _fit_linear(x, [e.ticket_type.value for e in examples], weights, c=c, seed=seed)
    with_priority = [i for i, e in enumerate(examples) if e.priority is not None]
    priority_model: _Linear | None = None
    distinct = {examples[i].priority for i in with_priority}
    if len(with_priority) >= MIN_PRIORITY_LABELS and len(distinct) >= 2:
        rows = np.asarray(with_priority, dtype=np.int64)
        priority_model = _fit_linear(
            x[rows],
            [str(examples[i].priority) for i in with_priority],
            weights[rows],
            c=priority_c if priority_c is not None else c,
            seed=seed,
        )
    meta = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "c": c,
        "type_counts": dict(sorted(Counter(e.ticket_type.value for e in examples).items())),
        "priority_counts": dict(
            sorted(Counter(e.priority.value for e in examples if e.priority).items())
        ),
    }
    return TrainedModel(vectoriser, type_model, priority_model, labels=len(examples), meta=meta)


# ---------------------------------------------------------------- loading


def _fail(message: str) -> ModelLoadError:
    return ModelLoadError(message)


def _check_classes(
    value: Any, allowed: set[str], name: str, *, may_be_empty: bool
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"manifest {name} is not a list of strings")
    if len(set(value)) != len(value) or not set(value) <= allowed:
        raise _fail(f"manifest {name} has unknown or repeated classes")
    if not value and not may_be_empty:
        raise _fail(f"manifest {name} is empty")
    return tuple(value)


def load(data: bytes, manifest: dict[str, Any]) -> TrainedModel:
    """Build a model from `to_bytes()` output. Raises ModelLoadError for anything wrong.

    Checked: the manifest's format and version, the sha256 and size of `data`, that the archive
    holds exactly the expected arrays with the expected dtypes and consistent shapes, finite
    values, sorted unique in-range columns and classes from our enums. Arrays are read with
    allow_pickle=False, so an object array is refused rather than unpickled.
    """
    if not isinstance(manifest, dict):
        raise _fail("manifest is not an object")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _fail("model data is not bytes")
    data = bytes(data)
    if manifest.get("format") != FORMAT:
        raise _fail(f"unknown model format {manifest.get('format')!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _fail(f"unknown model format version {manifest.get('format_version')!r}")
    if len(data) > MAX_MODEL_BYTES:
        raise _fail("model data is too large")
    expected_sha = manifest.get("sha256")
    if not isinstance(expected_sha, str) or hashlib.sha256(data).hexdigest() != expected_sha:
        raise _fail("model data does not match its sha256")
    try:
        params = VectoriserParams.from_json(manifest.get("vectoriser"))
    except (TypeError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    type_classes = _check_classes(
        manifest.get("type_classes"),
        {t.value for t in TicketType},
        "type_classes",
        may_be_empty=False,
    )
    priority_classes = _check_classes(
        manifest.get("priority_classes"),
        {p.value for p in Priority},
        "priority_classes",
        may_be_empty=True,
    )
    labels = manifest.get("labels")
    if type(labels) is not int or labels < 0:
        raise _fail("manifest labels is not a count")
    arrays = _read_arrays(data)
    columns, idf = arrays["columns"], arrays["idf"]
    n = columns.shape[0] if columns.ndim == 1 else -1
    rows = n + n_rule_features(params)  # coefficient rows: text features, then rule scores
    expected: dict[str, tuple[tuple[int, ...], str]] = {
        "columns": ((n,), "int64"),
        "idf": ((n,), "float32"),
        "type_coef": ((rows, len(type_classes)), "float32"),
        "type_intercept": ((len(type_classes),), "float32"),
        "priority_coef": ((rows, len(priority_classes)), "float32"),
        "priority_intercept": ((len(priority_classes),), "float32"),
    }
    if n < 0:
        raise _fail("columns is not one-dimensional")
    for name, (shape, dtype) in expected.items():
        a = arrays[name]
        if a.shape != shape or str(a.dtype) != dtype:
            raise _fail(f"array {name} has shape {a.shape} {a.dtype}, expected {shape} {dtype}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _fail(f"array {name} has non-finite values")
    if n and (
        columns[0] < 0 or columns[-1] >= (1 << params.hash_bits) or np.any(np.diff(columns) <= 0)
    ):
        raise _fail("columns are not sorted unique buckets")
    if manifest.get("n_features", n) != n:
        raise _fail("manifest n_features does not match the arrays")
    if len(type_classes) == 1 and arrays["type_coef"].any():
        raise _fail("a one-class model has weights")
    vectoriser = Vectoriser(params, columns.copy(), idf.copy())
    type_model = _Linear(type_classes, arrays["type_coef"], arrays["type_intercept"])
    priority_model = (
        _Linear(priority_classes, arrays["priority_coef"], arrays["priority_intercept"])
        if priority_classes
        else None
    )
    meta = {k: v for k, v in manifest.items() if k not in _RESERVED_MANIFEST_KEYS}
    meta["sha256"] = expected_sha
    return TrainedModel(vectoriser, type_model, priority_model, labels=labels, meta=meta)


def _read_arrays(data: bytes) -> dict[str, npt.NDArray[Any]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            names = set(archive.files)
            if names != set(_ARRAYS):
                raise _fail(f"model arrays {sorted(names)} are not the expected {list(_ARRAYS)}")
            return {name: np.asarray(archive[name]) for name in _ARRAYS}
    except ModelLoadError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        # allow_pickle=False turns an object array into ValueError: refused, never unpickled.
        raise _fail(f"model data is not a valid array archive ({type(exc).__name__})") from exc


# ---------------------------------------------------------------- the shipped model

DEFAULT_DATA = "model.npz"
DEFAULT_MANIFEST = "manifest.json"


def default_files() -> tuple[Path, Path]:
    """Where the shipped default model lives (inside the installed package)."""
    base = Path(str(resources.files("ticketing.triage.learned").joinpath("default")))
    return base / DEFAULT_DATA, base / DEFAULT_MANIFEST


def load_files(data_path: Path, manifest_path: Path) -> TrainedModel:
    """Load a model from its two files; ModelLoadError if either is missing or bad."""
    try:
        data = data_path.read_bytes()
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _fail(f"model file missing: {Path(exc.filename or '').name}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"model files unreadable ({type(exc).__name__})") from exc
    return load(data, manifest)


@lru_cache(maxsize=1)
def default_model() -> TrainedModel:
    """The shipped model, loaded once per process. Raises ModelLoadError if it is unusable."""
    return load_files(*default_files())


def save_files(model: TrainedModel, directory: Path) -> tuple[Path, Path]:
    """Write `model` as model.npz + manifest.json into `directory` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    data, manifest = model.to_bytes()
    data_path, manifest_path = directory / DEFAULT_DATA, directory / DEFAULT_MANIFEST
    data_path.write_bytes(data)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return data_path, manifest_path


# ---------------------------------------------------------------- data and evaluation


def read_csv(path: str | Path, *, weight: float = 1.0) -> list[Example]:
    """Training examples from a labelled CSV (see `ticketing.triage.labelled.load_rows`): rows
    without a type label are skipped. Raises ValueError for missing columns or unknown labels."""
    return [
        Example(
            title=row.title,
            description=row.description,
            ticket_type=TicketType(row.ticket_type),
            priority=Priority(row.priority) if row.priority else None,
            weight=weight,
        )
        for row in load_rows(path, require_type=True)
        if row.ticket_type is not None
    ]


def _metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    return classification_metrics(gold, predicted)


def evaluate(model: TrainedModel, examples: Sequence[Example]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall/F1 per field, on labelled examples.

    `ticket_type` always (when there are examples); `priority` when the examples carry priority
    labels and the model predicts priority. Same metric definitions as `ticketing eval`.
    """
    predictions = model.predict_many([(e.title, e.description) for e in examples])
    out: dict[str, Any] = {"n": len(examples)}
    if examples:
        out["ticket_type"] = _metrics(
            [e.ticket_type.value for e in examples], [p.ticket_type.value for p in predictions]
        )
    pairs = [
        (e.priority.value, p.priority.value)
        for e, p in zip(examples, predictions, strict=True)
        if e.priority is not None and p.priority is not None
    ]
    if pairs:
        out["priority"] = _metrics([g for g, _ in pairs], [p for _, p in pairs])
    return out
