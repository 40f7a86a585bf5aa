"""`ticketing model train`: train the local triage model from labelled CSV files.

`ticketing model train --csv ../shared/data/nlbse24-issues-train.csv` reproduces the shipped
default model (src/ticketing/triage/learned/default/); `--out DIR` writes elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

model_app = typer.Typer(help="The learned local triage model.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@model_app.command("train")
def train_command(
    csv_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--csv", help="Labelled CSV (title, description|body, ticket_type|label[, priority])"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for model.npz + manifest.json (default: the shipped model)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    from_db: Annotated[
        bool,
        typer.Option(
            "--from-db",
            help="Train from the database's corrections and resolved tickets (plus --csv, "
            "weighted 0.3) and store the result as a version",
        ),
    ] = False,
    activate: Annotated[
        bool, typer.Option("--activate", help="With --from-db: make the new version active")
    ] = False,
) -> None:
    """Train a model on the CSV files and write it (by default over the shipped default); with
    --from-db, train from the database and store it as a version (see `model list`)."""
    if from_db:
        from ticketing.triage.commands import train_from_db_command

        train_from_db_command(csv_files or [], activate)
        return
    if not csv_files:
        raise _fail("pass --csv FILE (or --from-db)")
    from ticketing.triage.learned.model import default_files, read_csv, save_files, train

    examples = []
    for path in csv_files:
        try:
            examples.extend(read_csv(path))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {path}: {exc}") from exc
    if not examples:
        raise _fail("no labelled rows in the given files")
    try:
        model = train(examples, seed=seed)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    directory = out if out is not None else default_files()[0].parent
    data_path, manifest_path = save_files(model, directory)
    _, manifest = model.to_bytes()
    summary = {
        "labels": model.labels,
        "type_classes": list(model.type_classes),
        "priority_classes": list(model.priority_classes),
        "n_features": manifest["n_features"],
        "bytes": data_path.stat().st_size,
        "sha256": manifest["sha256"],
        "files": [str(data_path), str(manifest_path)],
    }
    typer.echo(json.dumps(summary, indent=2))
