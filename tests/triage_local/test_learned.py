"""The learned local model: it learns, it round-trips, tampered files fail safely, and the
analyzer falls back to its rules (with the reason) when the model cannot be loaded."""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ticketing.cli import app as cli_app
from ticketing.errors import ModelLoadError
from ticketing.triage import learned
from ticketing.triage.learned import (
    Example,
    TrainedModel,
    default_model,
    evaluate,
    load,
    load_files,
    read_csv,
    save_files,
    train,
)
from ticketing.triage.learned import model as learned_model
from ticketing.triage.local import LocalAnalyzer
from ticketing.triage.service import analyze_with_fallback
from ticketing.vocabulary import Priority, TicketType

KNOWN = ["python", "postgresql", "networking"]

_TOPICS: dict[tuple[TicketType, Priority], tuple[list[str], list[str]]] = {
    (TicketType.bug, Priority.medium): (
        ["Button broken", "Page shows an error", "Export fails", "Crash when saving"],
        ["it throws an exception", "the app crashes", "error 500 after clicking", "it is broken"],
    ),
    (TicketType.feature, Priority.low): (
        ["Please add dark mode", "Allow CSV export", "Support for tags", "New filter option"],
        ["it would be nice to have", "please add an option", "we would like a way to"],
    ),
    (TicketType.support, Priority.low): (
        ["How do I change my email", "Where is the invoice", "Question about plans"],
        ["how can I do this", "I cannot find where to", "is there documentation for"],
    ),
}


def synthetic(n_per_class: int = 20, seed: int = 1) -> list[Example]:
    """Helpdesk-like tickets, plus tickets about an invented "zorblax" that are technical/high."""
    rng = random.Random(seed)
    out: list[Example] = []
    for (ticket_type, priority), (titles, bodies) in _TOPICS.items():
        for _ in range(n_per_class):
            out.append(
                Example(
                    rng.choice(titles),
                    f"{rng.choice(bodies)}. {rng.choice(bodies)}.",
                    ticket_type,
                    priority,
                )
            )
    for i in range(n_per_class):
        where = rng.choice(["in the rack", "on node 3", "after the upgrade", "since monday"])
        out.append(
            Example(
                rng.choice(["Zorblax down", "The zorblax is failing", "zorblax again"]),
                f"The zorblax unit {where} needs work ({i}).",
                TicketType.technical,
                Priority.high,
            )
        )
    rng.shuffle(out)
    return out


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    return train(synthetic(), seed=0)


def test_a_model_learns_an_invented_vocabulary(model: TrainedModel) -> None:
    # The shipped model never saw the word and cannot even say "technical".
    assert "technical" not in default_model().type_classes
    assert default_model().predict("Zorblax down", "the zorblax fails").priority is None

    prediction = model.predict("Our zorblax stopped", "Please look at the zorblax today")
    assert (prediction.ticket_type, prediction.priority) == (TicketType.technical, Priority.high)
    assert prediction.confidence["ticket_type"] > 0.5 and prediction.confidence["priority"] > 0.5
    other = model.predict("How do I change my email", "I cannot find where to")
    assert (other.ticket_type, other.priority) == (TicketType.support, Priority.low)
    assert model.labels == len(synthetic())

    # ...and the local analyzer uses it for type and priority, rules only for skills.
    analyzer = LocalAnalyzer(lambda: model)
    analysis = analyzer.analyze_sync("zorblax on the python host", "zorblax needs work", KNOWN)
    assert (analysis.ticket_type, analysis.priority) == (TicketType.technical, Priority.high)
    assert analysis.required_skills == ["python"]
    assert analysis.confidence is not None and set(analysis.confidence) == {
        "ticket_type",
        "priority",
    }
    assert analyzer.model == f"local-learned-{model.version}"


def test_priority_needs_enough_labels() -> None:
    few = [
        Example("zorblax", "zorblax", TicketType.technical, Priority.high),
        Example("add tags", "please add", TicketType.feature),
        Example("add more", "please add", TicketType.feature),
    ]
    small = train(few)
    assert not small.has_priority and small.priority_classes == ()
    assert small.predict("zorblax", "").priority is None
    # Without a priority classifier the analyzer's rules pick the priority.
    analysis = LocalAnalyzer(lambda: small).analyze_sync("Production is down", "outage", KNOWN)
    assert analysis.priority is Priority.urgent
    assert analysis.confidence is not None and "priority" not in analysis.confidence


def test_round_trip_gives_identical_predictions(model: TrainedModel) -> None:
    data, manifest = model.to_bytes()
    assert manifest["sha256"] and manifest["type_classes"] == [
        "bug",
        "feature",
        "support",
        "technical",
    ]
    json.dumps(manifest)  # JSON-able as promised
    loaded = load(data, manifest)
    items = [(e.title, e.description) for e in synthetic(seed=7)] + [("", ""), ("zorblax", "")]
    assert loaded.predict_many(items) == model.predict_many(items)
    assert loaded.labels == model.labels and loaded.version == model.version
    # The same bytes again: deterministic for a seed.
    assert train(synthetic(), seed=0).to_bytes()[0] == data


def test_vectorise_is_normalised_for_cosine_similarity(model: TrainedModel) -> None:
    x = model.vectorise([("zorblax down", "zorblax"), ("zorblax failing", ""), ("add tags", "")])
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1))).ravel()
    assert np.allclose(norms, 1.0, atol=1e-5)
    sims = (x @ x.T).toarray()
    assert sims[0, 1] > sims[0, 2]


def test_evaluate_reports_per_class(model: TrainedModel) -> None:
    report = evaluate(model, synthetic(seed=3))
    assert report["n"] == 80
    assert report["ticket_type"]["macro_f1"] > 0.9
    assert set(report["ticket_type"]["per_class"]) == {"bug", "feature", "support", "technical"}
    assert report["priority"]["per_class"]["high"]["recall"] == 1.0


# --- tampering --------------------------------------------------------------------------------


def _npz(arrays: dict[str, Any], *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **arrays)
    return buffer.getvalue()


def _arrays(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _resigned(data: bytes, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the sha256 of `data`: what an attacker who can write both does."""
    import hashlib

    return {**manifest, "sha256": hashlib.sha256(data).hexdigest()}


class _Boom:
    ran = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Boom._explode, ())

    @staticmethod
    def _explode() -> None:
        _Boom.ran = True


def test_tampered_files_fail_safely(model: TrainedModel) -> None:
    data, manifest = model.to_bytes()

    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(ModelLoadError, match="sha256"):
        load(bytes(flipped), manifest)
    with pytest.raises(ModelLoadError, match="sha256"):
        load(data, {**manifest, "sha256": "0" * 64})
    with pytest.raises(ModelLoadError, match="version"):
        load(data, {**manifest, "format_version": 99})
    with pytest.raises(ModelLoadError):
        load(data, {**manifest, "type_classes": ["bug", "feature", "support", "hacked"]})
    with pytest.raises(ModelLoadError):
        load(data, {**manifest, "vectoriser": {"hash_bits": "22"}})
    with pytest.raises(ModelLoadError):
        load(b"not a zip at all", _resigned(b"not a zip at all", manifest))

    extra = _npz({**_arrays(data), "payload": np.zeros(3, dtype=np.float32)})
    with pytest.raises(ModelLoadError, match="expected"):
        load(extra, _resigned(extra, manifest))

    arrays = _arrays(data)
    arrays["type_coef"] = arrays["type_coef"][:, :2]
    short = _npz(arrays)
    with pytest.raises(ModelLoadError, match="shape"):
        load(short, _resigned(short, manifest))

    arrays = _arrays(data)
    arrays["idf"] = arrays["idf"].copy()
    arrays["idf"][0] = np.nan
    nan = _npz(arrays)
    with pytest.raises(ModelLoadError, match="non-finite"):
        load(nan, _resigned(nan, manifest))

    arrays = _arrays(data)
    arrays["idf"] = np.array([_Boom()] * arrays["idf"].shape[0], dtype=object)
    pickled = _npz(arrays, allow_pickle=True)
    with pytest.raises(ModelLoadError):
        load(pickled, _resigned(pickled, manifest))
    assert not _Boom.ran  # refused, never unpickled

    # A zip that is not an npz at all (e.g. a file named like an array but holding a pickle).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("columns.npy", b"\x80\x04K\x01.")
    junk = buffer.getvalue()
    with pytest.raises(ModelLoadError):
        load(junk, _resigned(junk, manifest))


# --- fallback ---------------------------------------------------------------------------------


@pytest.fixture
def default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the shipped-model location at an empty directory (and forget the cached model)."""
    monkeypatch.setattr(
        learned_model,
        "default_files",
        lambda: (tmp_path / learned_model.DEFAULT_DATA, tmp_path / learned_model.DEFAULT_MANIFEST),
    )
    default_model.cache_clear()
    yield tmp_path
    default_model.cache_clear()


async def test_missing_default_model_falls_back_to_the_rules(default_dir: Path) -> None:
    analyzer = LocalAnalyzer()
    assert analyzer.model == "local-rules-v1"
    assert analyzer.model_error is not None and "model file missing" in analyzer.model_error
    title, body = "Production is down", "The site crashes with an error for everyone"
    analysis = analyzer.analyze_sync(title, body, KNOWN)
    assert analysis == LocalAnalyzer(use_model=False).analyze_sync(title, body, KNOWN)
    assert analysis.confidence is None

    outcome = await analyze_with_fallback(analyzer, analyzer, title, body, KNOWN)
    assert (outcome.status, outcome.provider, outcome.model) == (
        "fallback",
        "local",
        "local-rules-v1",
    )
    assert outcome.error is not None and "local model unavailable" in outcome.error
    assert "rules used" in outcome.error


async def test_corrupt_default_model_falls_back_and_recovers(
    default_dir: Path, model: TrainedModel
) -> None:
    data_path, manifest_path = save_files(model, default_dir)
    raw = bytearray(data_path.read_bytes())
    raw[100] ^= 0xFF
    data_path.write_bytes(bytes(raw))
    analyzer = LocalAnalyzer()
    analysis = analyzer.analyze_sync("zorblax down", "zorblax", KNOWN)
    assert analysis.ticket_type is not TicketType.technical or analysis.confidence is None
    assert analyzer.model_error is not None and "sha256" in analyzer.model_error
    outcome = await analyze_with_fallback(analyzer, analyzer, "zorblax down", "zorblax", KNOWN)
    assert outcome.status == "fallback" and outcome.error and "sha256" in outcome.error

    manifest_path.write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_files(data_path, manifest_path)

    # Repaired files are picked up by the next analysis, without a new analyzer.
    save_files(model, default_dir)
    default_model.cache_clear()
    fixed = analyzer.analyze_sync("zorblax down", "zorblax", KNOWN)
    assert (fixed.ticket_type, fixed.priority) == (TicketType.technical, Priority.high)
    assert analyzer.model_error is None and analyzer.model == f"local-learned-{model.version}"


def test_shipped_model_is_small_and_loads() -> None:
    data_path, manifest_path = learned.default_files()
    assert data_path.stat().st_size < 10 * 1024 * 1024
    shipped = default_model()
    manifest = json.loads(manifest_path.read_text())
    assert shipped.version == manifest["sha256"][:12]
    assert shipped.type_classes == ("bug", "feature", "support")
    assert shipped.labels == 1500


# --- CSV and the command ----------------------------------------------------------------------


def _write_csv(path: Path, examples: list[Example]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "description", "ticket_type", "priority"])
        for e in examples:
            writer.writerow([e.title, e.description, e.ticket_type.value, e.priority or ""])


def test_read_csv_maps_issue_labels(tmp_path: Path) -> None:
    path = tmp_path / "issues.csv"
    path.write_text(
        "repo,created_at,label,title,body\n"
        "a/b,2023-01-01,bug,Crash,It crashes\n"
        "a/b,2023-01-01,question,How?,How do I\n"
        "a/b,2023-01-01,feature,Add,Please add\n"
    )
    examples = read_csv(path)
    assert [e.ticket_type for e in examples] == [
        TicketType.bug,
        TicketType.support,
        TicketType.feature,
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("title,description,ticket_type,priority\nx,y,bug,extreme\n")
    with pytest.raises(ValueError, match="unknown priority"):
        read_csv(bad)


def test_model_train_command_writes_a_loadable_model(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    _write_csv(csv_path, synthetic())
    out = tmp_path / "model"
    result = CliRunner().invoke(
        cli_app, ["model", "train", "--csv", str(csv_path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == 80 and summary["priority_classes"] == ["high", "low", "medium"]
    trained = load_files(out / "model.npz", out / "manifest.json")
    assert trained.predict("zorblax", "zorblax").ticket_type is TicketType.technical

    missing = CliRunner().invoke(
        cli_app, ["model", "train", "--csv", str(tmp_path / "nope.csv"), "--out", str(out)]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_one_text_is_vectorised_to_the_same_numbers_as_in_a_batch():
    # A single text takes a numpy-only path (the confidence in every AI answer); it must give
    # exactly the row the sparse batch path gives, or confidences would depend on the path.
    model = default_model()
    texts = [
        ("VPN keeps dropping", "Since this morning the VPN disconnects every 5 minutes."),
        ("Refund for invoice 4411", "I was charged twice. Please refund the second payment."),
        ("URGENT URGENT: prod down", "prod prod prod database 500 errors everywhere!!!"),
        ("", "only a body"),
        ("only a title", ""),
        ("", ""),
        ("Ünïcode ßtraße", "日本語のテキスト and some English words"),
    ]
    batch = model.vectorise([*texts, ("padding", "so the batch path is taken")])
    for i, text in enumerate(texts):
        one = model.vectorise([text])
        row = batch[i]
        row.sort_indices()
        assert one.shape == row.shape and one.dtype == row.dtype
        assert np.array_equal(one.indices, row.indices)
        assert np.array_equal(one.data, row.data)
