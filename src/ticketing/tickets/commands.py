"""`ticketing rerun-ai`: re-analyse fallback tickets from the command line, no server needed."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ticketing.console import command_settings, console, run_async
from ticketing.vocabulary import AnalysisStatus


def register(app: typer.Typer) -> None:
    @app.command("rerun-ai")
    def rerun_ai(
        ticket: Annotated[str | None, typer.Option(help="Re-analyse only this ticket id")] = None,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Tickets at once")] = 4,
    ) -> None:
        """Re-run the AI on open fallback tickets (or on one ticket), re-routing open ones."""
        from ticketing import flows
        from ticketing.runtime import build_runtime

        settings = command_settings()
        columns = (
            TextColumn("Re-analysing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )

        async def main() -> flows.RerunSummary:
            runtime = build_runtime(settings)
            try:
                with Progress(*columns, console=console, transient=False) as progress:
                    task = progress.add_task("rerun", total=None)
                    return await flows.rerun_triage(
                        runtime,
                        ticket,
                        concurrency=concurrency,
                        on_start=lambda total: progress.update(task, total=total),
                        on_progress=lambda: progress.advance(task),
                    )
            finally:
                await runtime.close()

        summary = run_async(main)
        if not summary.tickets:
            console.print("No fallback tickets to re-analyse.")
            return
        ai, fallback = (summary.outcomes[s] for s in (AnalysisStatus.ai, AnalysisStatus.fallback))
        console.print(
            f"Re-analysed {len(summary.results)} of {summary.tickets} tickets: "
            f"{ai} by AI, {fallback} fell back again, "
            f"{summary.rerouted} re-routed, {len(summary.failed)} failed."
        )
        for line in summary.failed:
            console.print(f"[red]failed[/red] {line}")
        if summary.failed:
            raise typer.Exit(1)
