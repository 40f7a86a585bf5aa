"""`ticketing rerun-ai`: re-analyse fallback tickets from the command line, no server needed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("rerun-ai")
    def rerun_ai(
        ticket: Annotated[str | None, typer.Option(help="Re-analyse only this ticket id")] = None,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Tickets at once")] = 4,
    ) -> None:
        """Re-run the AI on open fallback tickets (or on one ticket), re-routing open ones."""
        from ticketing.cli import _run, _settings
        from ticketing.flows import TriageResult, triage_ticket
        from ticketing.runtime import build_runtime
        from ticketing.tickets import repository as tickets_repo

        settings = _settings()

        async def main() -> None:
            runtime = build_runtime(settings)
            try:
                async with runtime.db.transaction() as session:
                    if ticket is not None:
                        if await tickets_repo.get(session, ticket) is None:
                            console.print(f"[red]No ticket with id {ticket}[/red]")
                            raise typer.Exit(1)
                        ids = [ticket]
                    else:
                        ids = list(await tickets_repo.rerun_candidates(session))
                if not ids:
                    console.print("No fallback tickets to re-analyse.")
                    return
                results: list[TriageResult] = []
                errors: list[str] = []
                limit = asyncio.Semaphore(concurrency)
                columns = (
                    TextColumn("Re-analysing"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                )
                with Progress(*columns, console=console) as progress:
                    task = progress.add_task("rerun", total=len(ids))

                    async def one(ticket_id: str) -> None:
                        async with limit:
                            try:
                                results.append(await triage_ticket(runtime, ticket_id, "rerun"))
                            except Exception as exc:  # report, keep going with the others
                                errors.append(f"{ticket_id}: {exc}")
                            progress.advance(task)

                    await asyncio.gather(*(one(i) for i in ids))
                outcomes = Counter(r.status for r in results)
                rerouted = sum(r.rerouted for r in results)
                console.print(
                    f"Re-analysed {len(results)} of {len(ids)} tickets: "
                    f"{outcomes['ai']} by AI, {outcomes['fallback']} fell back again, "
                    f"{rerouted} re-routed, {len(errors)} failed."
                )
                for line in errors:
                    console.print(f"[red]failed[/red] {line}")
                if errors:
                    raise typer.Exit(1)
            finally:
                await runtime.close()

        _run(main)
