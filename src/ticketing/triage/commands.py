"""`ticketing eval` and `ticketing triage`: measure a provider, or triage one ticket by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ticketing.skills import normalise_skills
from ticketing.triage.local import DEFAULT_SKILL_VOCABULARY, LocalAnalyzer

if TYPE_CHECKING:
    from ticketing.triage.base import TriageProvider
    from ticketing.triage.evaluation import EvalReport

PROVIDER_HELP = "gemini, openai or local (default: AI_PROVIDER from the settings)"
SKILLS_HELP = "Comma-separated known skills (default: a built-in list of common skills)"


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _known_skills(skills: str | None) -> list[str]:
    if skills is None:
        return list(DEFAULT_SKILL_VOCABULARY)
    return normalise_skills(skills.split(","))


def _active_local() -> LocalAnalyzer:
    """The local analyzer with the model that is active in the database (when settings and a
    database with an active version are there), else with the shipped one."""
    from ticketing.config import load_settings

    try:
        settings = load_settings()
        url = settings.database_url
        sqlite_file = url.startswith("sqlite") and ":memory:" not in url
        if sqlite_file and not Path(url.split("///", 1)[-1]).exists():
            return LocalAnalyzer()  # no database here: do not create one
        from ticketing.db import Database
        from ticketing.triage.registry import ModelRegistry

        async def active() -> ModelRegistry | None:
            db = Database(url, pool_size=1)
            try:
                registry = ModelRegistry(db)
                return registry if await registry.refresh(force=True) else None
            finally:
                await db.dispose()

        registry = asyncio.run(active())
    except Exception:  # no settings, no database, no tables: the shipped model it is
        return LocalAnalyzer()
    return LocalAnalyzer(registry.model_source) if registry is not None else LocalAnalyzer()


def _build_provider(name: str | None) -> TriageProvider:
    """The named provider, else the configured one. Local needs no settings at all; it uses
    the model active in the database when there is one (`ticketing eval` scores that)."""
    if name is not None and name.strip().lower() == "local":
        return _active_local()
    from ticketing.config import load_settings
    from ticketing.errors import ConfigurationError

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        hint = " (use --provider local to run offline without settings)"
        raise _fail(f"{exc}{hint}") from exc
    from ticketing.triage.factory import build_provider

    try:
        provider = build_provider(settings, name.strip().lower() if name else None)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    return _active_local() if isinstance(provider, LocalAnalyzer) else provider


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _print_report(console: Console, report: EvalReport) -> None:
    data = report.to_dict()
    title = f"{report.provider} ({report.model or '-'}): {report.n} rows in {report.seconds:.2f} s"
    table = Table(title=title)
    table.add_column("field")
    table.add_column("n", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("macro-F1", justify="right")
    table.add_column("micro-F1", justify="right")
    for name in ("ticket_type", "priority", "required_skills"):
        metrics = data.get(name)
        if metrics is not None:
            table.add_row(
                name,
                str(metrics["n"]),
                _fmt(metrics["accuracy"]),
                _fmt(metrics["macro_f1"]),
                _fmt(metrics.get("micro_f1", "")),
            )
    console.print(table)
    for name in ("ticket_type", "priority"):
        metrics = data.get(name)
        if metrics is None:
            continue
        per_class = Table(title=f"{name} per class")
        for column in ("class", "precision", "recall", "F1", "support"):
            per_class.add_column(column, justify="left" if column == "class" else "right")
        for cls, m in metrics["per_class"].items():
            per_class.add_row(
                cls, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), str(m["support"])
            )
        console.print(per_class)
    if report.errors:
        console.print(f"[yellow]{report.errors} rows failed and were scored as wrong[/yellow]")


def register(app: typer.Typer) -> None:
    """Add the `eval` and `triage` commands to `app`."""

    @app.command("eval")
    def eval_command(
        file: Annotated[Path, typer.Argument(help="Labelled CSV (title, description|body, ...)")],
        provider: Annotated[str | None, typer.Option(help=PROVIDER_HELP)] = None,
        limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows")] = None,
        json_output: Annotated[
            bool, typer.Option("--json", help="Also print one JSON object as the last line")
        ] = False,
        skills: Annotated[str | None, typer.Option(help=SKILLS_HELP)] = None,
        concurrency: Annotated[
            int, typer.Option(min=1, max=64, help="Rows in flight (remote providers)")
        ] = 8,
    ) -> None:
        """Measure a triage provider against a labelled CSV file."""
        from ticketing.triage.evaluation import evaluate
        from ticketing.triage.labelled import load_rows

        try:
            rows = load_rows(file, limit=limit)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {file}: {exc}") from exc
        chosen = _build_provider(provider)
        known = _known_skills(skills)
        columns = (TextColumn("Evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

        async def main() -> EvalReport:
            try:
                # The bar goes to stderr so stdout stays table + JSON.
                with Progress(*columns, console=Console(stderr=True)) as progress:
                    task = progress.add_task("eval", total=len(rows))
                    return await evaluate(
                        chosen,
                        rows,
                        known,
                        on_progress=lambda: progress.advance(task),
                        concurrency=concurrency,
                    )
            finally:
                # Remote providers hold HTTP clients: no "unclosed client" warnings may leak.
                await chosen.aclose()

        report = asyncio.run(main())
        _print_report(Console(), report)
        if json_output:
            typer.echo(json.dumps(report.to_dict(), sort_keys=False))

    @app.command("triage")
    def triage_command(
        title: Annotated[str, typer.Argument(help="Ticket title")],
        description: Annotated[str, typer.Argument(help="Ticket description")],
        provider: Annotated[str | None, typer.Option(help=PROVIDER_HELP)] = None,
        skills: Annotated[str | None, typer.Option(help=SKILLS_HELP)] = None,
    ) -> None:
        """Triage one ticket and print the analysis as JSON (nothing is stored)."""
        chosen = _build_provider(provider)
        known = _known_skills(skills)
        result = asyncio.run(_triage_one(chosen, title, description, known))
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


async def _triage_one(
    provider: TriageProvider, title: str, description: str, known: Sequence[str]
) -> dict[str, Any]:
    from ticketing.triage.service import analyze_with_fallback

    try:
        # The same path a ticket takes: the provider, else the local analyzer with the reason.
        outcome = await analyze_with_fallback(provider, LocalAnalyzer(), title, description, known)
    finally:
        await provider.aclose()
    return {
        "provider": outcome.provider,
        "model": outcome.model,
        "status": outcome.status,
        "error": outcome.error,
        **outcome.analysis.model_dump(mode="json"),
    }


def register_model(model_app: typer.Typer) -> None:
    """Add `model list` to the `model` group (`model train` lives in triage.learned.commands
    and hands `--from-db` to `train_from_db_command`)."""

    @model_app.command("list")
    def list_models() -> None:
        """List the stored model versions, newest first, with their held-out scores."""
        from ticketing.console import command_settings, run_async
        from ticketing.runtime import build_runtime
        from ticketing.triage import learning
        from ticketing.triage import repository as triage_repo

        settings = command_settings()

        async def main() -> list[Any]:
            runtime = build_runtime(settings)
            try:
                async with triage_repo.reading(runtime.db) as session:
                    return list(await learning.list_versions(session))
            finally:
                await runtime.close()

        versions = run_async(main)
        table = Table(title="triage model versions")
        for column in ("id", "created", "labels", "held out", "type F1", "priority F1", "active"):
            table.add_column(column, overflow="fold")
        for v in versions:
            scores = v.scores or {}
            table.add_row(
                v.id,
                v.created_at.isoformat(timespec="seconds"),
                str(v.labels),
                str(scores.get("heldout", "-")),
                _fmt((scores.get("ticket_type") or {}).get("macro_f1", "-")),
                _fmt((scores.get("priority") or {}).get("macro_f1", "-")),
                "yes" if v.active else "",
            )
        Console().print(table)
        if not versions:
            typer.echo("No stored versions: the local provider uses the shipped default model.")


def train_from_db_command(csv_files: Sequence[Path], activate: bool) -> None:
    """`ticketing model train --from-db [--csv FILE ...] [--activate]`: train a version from the
    database's labels (the CSV files, else TRIAGE_BASE_CSV, added weighted 0.3), print its
    held-out scores and the active model's, store it, and with --activate make it active."""
    from ticketing.console import command_settings, run_async
    from ticketing.runtime import build_runtime
    from ticketing.triage import learning
    from ticketing.triage.learned import read_csv

    settings = command_settings()
    try:
        base = [e for path in csv_files for e in read_csv(path, weight=learning.BASE_WEIGHT)]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read the CSV: {exc}") from exc

    async def main() -> learning.TrainReport:
        runtime = build_runtime(settings)
        try:
            return await learning.train_from_db(
                runtime.db,
                base=base if csv_files else learning.base_examples(settings),
                activation="always" if activate else "never",
            )
        finally:
            await runtime.close()

    try:
        report = run_async(main)
    except learning.NotEnoughLabels as exc:
        raise _fail(str(exc), code=1) from exc
    table = Table(title=f"version {report.version_id}: {report.labels} labels")
    for column in ("model", "held out", "type macro-F1", "priority macro-F1"):
        table.add_column(column)
    for name, scores in (("new", report.scores), (report.compared_with, report.active_scores)):
        scores = scores or {}
        table.add_row(
            name,
            str(report.heldout),
            _fmt((scores.get("ticket_type") or {}).get("macro_f1", "-")),
            _fmt((scores.get("priority") or {}).get("macro_f1", "-")),
        )
    Console().print(table)
    typer.echo(report.reason)
