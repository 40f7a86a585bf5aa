"""The evaluation harness: labelled CSVs, the metrics, and the `eval` and `triage` commands."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ticketing.triage.base import Analysis, TriageError
from ticketing.triage.commands import register
from ticketing.triage.evaluation import evaluate, skill_metrics
from ticketing.triage.labelled import LabelledRow, load_rows
from ticketing.triage.local import LocalAnalyzer
from ticketing.triage.metrics import ERROR_LABEL, classification_metrics
from ticketing.vocabulary import Priority, TicketType


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


class ScriptedProvider:
    """Answers from a table keyed by title; a title mapped to None raises TriageError."""

    name = "scripted"
    model: str | None = "v0"

    def __init__(self, answers: dict[str, Analysis | None]) -> None:
        self.answers = answers
        self.calls = 0

    async def analyze(self, title: str, description: str, known_skills: Sequence[str]) -> Analysis:
        self.calls += 1
        answer = self.answers[title]
        if answer is None:
            raise TriageError("scripted failure")
        return answer


def answer(ticket_type: str, priority: str = "medium", skills: Sequence[str] = ()) -> Analysis:
    return Analysis(
        ticket_type=TicketType(ticket_type),
        priority=Priority(priority),
        required_skills=list(skills),
    )


# --- metrics ------------------------------------------------------------------------------------


def test_classification_metrics_by_hand() -> None:
    gold = ["bug", "bug", "feature", "support", "support"]
    pred = ["bug", "feature", "feature", "bug", None]
    m = classification_metrics(gold, pred)
    # bug:     TP 1, predicted 2, gold 2 -> P 1/2, R 1/2, F1 1/2
    # feature: TP 1, predicted 2, gold 1 -> P 1/2, R 1,   F1 2/3
    # support: TP 0                      -> F1 0   (the None counts only as a miss)
    assert m["accuracy"] == pytest.approx(2 / 5, abs=1e-4)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3, abs=1e-4)
    assert m["per_class"]["feature"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3, abs=1e-4),
        "support": 1,
    }
    assert m["per_class"]["support"]["recall"] == 0.0
    assert m["confusion"] == {
        "bug": {"bug": 1, "feature": 1},
        "feature": {"feature": 1},
        "support": {"bug": 1, ERROR_LABEL: 1},
    }


def test_a_predicted_class_missing_from_gold_lowers_macro_f1() -> None:
    m = classification_metrics(["bug", "bug"], ["bug", "other"])
    # bug: P 1, R 1/2 -> F1 2/3; "other" never occurs in gold -> F1 0; macro over both classes.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)
    assert m["macro_f1_gold_classes"] == pytest.approx(2 / 3, abs=1e-4)


def test_skill_metrics_by_hand() -> None:
    gold = [["python", "postgres"], ["css"], []]
    pred = [["postgresql", "python"], ["css", "javascript"], None]
    m = skill_metrics(gold, pred)
    # Row 1 matches through the alias table; row 2 has one extra; row 3 (failed) predicted none.
    # TP 3, FP 1, FN 0 -> micro-F1 6/7. Exact sets: rows 1 and 3.
    assert m["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["micro_f1"] == pytest.approx(6 / 7, abs=1e-4)
    # Per skill: python 1, postgresql 1, css 1, javascript 0 -> macro 3/4.
    assert m["macro_f1"] == pytest.approx(3 / 4, abs=1e-4)


# --- loading ------------------------------------------------------------------------------------


def test_load_rows_reads_all_label_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "labelled.csv",
        ["title", "description", "ticket_type", "priority", "required_skills"],
        [
            ["Crash", "It crashes", "bug", "High", "Python; postgres"],
            ["Idea", "Add dark mode", "feature", "", ""],
        ],
    )
    rows = load_rows(path)
    assert rows[0] == LabelledRow("Crash", "It crashes", "bug", "high", ("python", "postgres"))
    assert rows[1].priority is None and rows[1].required_skills == ()
    assert len(load_rows(path, limit=1)) == 1


def test_load_rows_maps_the_nlbse_label_column_and_long_bodies(tmp_path: Path) -> None:
    long_body = "log line\n" * 40_000  # well over csv's default 128 KiB field limit
    path = write_csv(
        tmp_path / "nlbse.csv",
        ["repo", "created_at", "label", "title", "body"],
        [
            ["a/b", "2023", "bug", "t1", long_body],
            ["a/b", "2023", "feature", "t2", "b"],
            ["a/b", "2023", "question", "t3", "c"],
        ],
    )
    rows = load_rows(path)
    assert [r.ticket_type for r in rows] == ["bug", "feature", "support"]
    assert rows[0].description == long_body
    assert rows[0].priority is None and rows[0].required_skills is None


def test_load_rows_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="description"):
        load_rows(write_csv(tmp_path / "a.csv", ["title", "text"], [["x", "y"]]))
    with pytest.raises(ValueError, match="ticket type"):
        load_rows(
            write_csv(tmp_path / "b.csv", ["title", "body", "ticket_type"], [["x", "y", "z"]])
        )


# --- evaluate -----------------------------------------------------------------------------------


async def test_evaluate_scores_any_provider_and_counts_errors() -> None:
    rows = [
        LabelledRow("1", "", "bug", "high", ("python",)),
        LabelledRow("2", "", "bug", "medium", ("python",)),
        LabelledRow("3", "", "feature", "low", ()),
        LabelledRow("4", "", "support", "low", ("billing",)),
        LabelledRow("5", "", "support", "low", ()),
    ]
    provider = ScriptedProvider(
        {
            "1": answer("bug", "high", ["python"]),
            "2": answer("feature", "medium", ["python"]),
            "3": answer("feature", "medium"),
            "4": answer("bug", "low"),
            "5": None,
        }
    )
    ticks: list[None] = []
    report = await evaluate(provider, rows, ["python"], on_progress=lambda: ticks.append(None))
    data = report.to_dict()
    assert len(ticks) == 5 and provider.calls == 5
    assert (data["n"], data["provider"], data["model"], data["errors"]) == (5, "scripted", "v0", 1)
    assert data["ticket_type"]["accuracy"] == pytest.approx(0.4, abs=1e-4)
    assert data["ticket_type"]["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3, abs=1e-4)
    assert data["ticket_type"]["confusion"]["support"] == {"bug": 1, ERROR_LABEL: 1}
    # priority: correct on rows 1, 2 and 4 -> 3/5
    assert data["priority"]["accuracy"] == pytest.approx(0.6, abs=1e-4)
    # skills: exact on rows 1, 2, 3 (empty == empty); row 4 misses billing; row 5 failed but
    # its gold set is empty, so "no skills" is exactly right.
    assert data["required_skills"]["accuracy"] == pytest.approx(4 / 5, abs=1e-4)
    assert data["required_skills"]["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1), abs=1e-4)
    json.dumps(data)  # JSON-ready


async def test_evaluate_reports_only_labelled_fields() -> None:
    rows = [LabelledRow("Crash on start", "Traceback", ticket_type="bug")]
    data = (await evaluate(LocalAnalyzer(), rows, ["python"])).to_dict()
    assert "ticket_type" in data and "priority" not in data and "required_skills" not in data
    assert data["provider"] == "local" and data["model"] == LocalAnalyzer().model


# --- the commands -------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_eval_command_prints_a_table_and_json_last(cli: typer.Typer, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "tickets.csv",
        ["title", "body", "label"],
        [
            ["App crashes on start", "Traceback (most recent call last): boom", "bug"],
            ["Feature request: dark mode", "It would be great to have dark mode", "feature"],
            ["How do I export my data?", "I can't find the button, any idea?", "question"],
        ],
    )
    result = CliRunner().invoke(cli, ["eval", str(path), "--provider", "local", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1])
    assert data["n"] == 3 and data["provider"] == "local" and data["errors"] == 0
    assert set(data["ticket_type"]) >= {"accuracy", "macro_f1", "per_class", "confusion"}
    assert data["ticket_type"]["accuracy"] == 1.0
    assert "priority" not in data
    assert "ticket_type" in result.stdout and "macro-F1" in result.stdout  # the Rich table


def test_eval_command_prints_per_class_tables_for_type_and_priority(
    cli: typer.Typer, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "prio.csv",
        ["title", "description", "ticket_type", "priority"],
        [
            ["Production is down", "Outage: every customer gets an error", "bug", "urgent"],
            ["Feature request: dark mode", "It would be great to have dark mode", "feature", "low"],
        ],
    )
    result = CliRunner().invoke(cli, ["eval", str(path), "--provider", "local", "--json"])
    assert result.exit_code == 0, result.output
    assert "ticket_type per class" in result.stdout and "priority per class" in result.stdout
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data["priority"]["per_class"]) >= {"urgent", "low"}
    assert data["priority"]["per_class"]["urgent"]["recall"] == 1.0


def test_eval_command_limit_and_skills(cli: typer.Typer, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "skills.csv",
        ["title", "description", "required_skills"],
        [["Postgres is slow", "psql hangs", "postgresql"], ["Other", "text", ""]],
    )
    args = ["eval", str(path), "--provider", "local", "--json", "--skills", "postgresql,css"]
    result = CliRunner().invoke(cli, [*args, "--limit", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["n"] == 1 and data["required_skills"]["accuracy"] == 1.0


def test_eval_command_fails_cleanly(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "missing.csv"), "--provider", "local"])
    assert result.exit_code == 2
    # Without --provider the settings are read; a broken configuration is a readable exit 2.
    path = write_csv(tmp_path / "t.csv", ["title", "body", "label"], [["a", "b", "bug"]])
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("SECRET_KEY", "DEBUG", "AI_PROVIDER", "MONGODB_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AI_TIMEOUT_SECONDS", "-1")
    result = CliRunner().invoke(cli, ["eval", str(path)])
    assert result.exit_code == 2
    assert "AI_TIMEOUT_SECONDS" in result.output.upper()


def test_triage_command_prints_one_analysis(cli: typer.Typer) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "triage",
            "Postgres crashes",
            "Since the upgrade production is down",
            "--provider",
            "local",
            "--skills",
            "postgresql,python",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["provider"], data["model"], data["error"]) == (
        "local",
        LocalAnalyzer().model,
        None,
    )
    assert data["status"] == "ai"  # local is the provider asked for, not a fallback
    assert data["required_skills"] == ["postgresql"]
    assert data["ticket_type"] == "bug" and data["priority"] == "urgent"
    assert data["helpful_notes"]
