"""`ticketing mail fetch`: one pass over the support mailbox, then exit (cron, debugging)."""

from __future__ import annotations

import typer

from ticketing.console import command_settings, console, err_console, run_async
from ticketing.errors import ConfigurationError

mail_app = typer.Typer(no_args_is_help=True, help="The support mailbox (INBOUND_EMAIL=imap).")


def register(app: typer.Typer) -> None:
    app.add_typer(mail_app, name="mail")


@mail_app.command("fetch")
def fetch() -> None:
    """Read the support mailbox once: new mail becomes tickets and comments, then exit.

    Exit codes: 0 read, 1 the mailbox could not be read (or another process is reading it),
    2 configuration (INBOUND_EMAIL is not imap, or IMAP settings are missing)."""
    from collections import Counter

    from ticketing import flows
    from ticketing.mail.imap import MailboxError
    from ticketing.mail.reader import LeaseLost, MailboxBusy
    from ticketing.runtime import build_runtime

    settings = command_settings()
    try:
        settings.require_mailbox()
    except ConfigurationError as exc:
        err_console.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc

    async def main() -> Counter[str] | str:
        runtime = build_runtime(settings)
        try:
            return await flows.make_mailbox_reader(runtime, name="mail-fetch").fetch_once()
        except MailboxBusy:
            return "Another process is reading the mailbox now (a worker or `ticketing serve`)."
        except LeaseLost:
            return "Stopped: another process took the mailbox over."
        except MailboxError as exc:
            return f"The mailbox could not be read: {exc}"
        finally:
            await runtime.close()

    result = run_async(main)
    if isinstance(result, str):
        err_console.print(f"[red]{result}[/red]")
        raise typer.Exit(1)
    if not result:
        console.print("No new mail.")
        return
    order = ["ticket", "comment", "ignored", "rejected", "moved", "failed"]
    parts = [f"{result[k]} {k}" for k in order if result[k]]
    console.print(f"Read {sum(result.values())} message(s): {', '.join(parts)}.")
    if result["failed"]:
        raise typer.Exit(1)
