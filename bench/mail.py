"""Mail benchmark: the support mailbox read by one `ticketing worker`.

On a fresh database (PostgreSQL by default) and a private Dovecot (tests/imap_server.py, on a
free port of 127.0.0.1):

1. **API create**, the figure to compare with: `ticketing serve` (WORKER=external) answers
   `POST /tickets/create` from 50 users for `--duration` seconds; req/s, p99 and server CPU ms
   per request.
2. **Mail, empty done folder**: one `ticketing worker` with INBOUND_EMAIL=imap waits in IDLE;
   `--messages` (1,000) messages from 100 senders are appended at once (MULTIAPPEND); the clock
   runs from the first APPEND to the moment the last message's inbound-log row is committed.
   Reported: seconds, messages/s, the worker's CPU ms per message, how busy the machine was.
3. **Mail, `--handled` (10,000) handled messages**: the done folder and the inbound log are
   filled with that many handled messages first, then the same batch is appended and timed.
   Nothing the reader does may grow with them: the two rates should be the same.

Targets: >= 50 messages/s with the empty done folder; the rate with 10,000 handled messages at
least 0.8 x the rate with none.

Each message goes through the email channel's `handle_message` (ticket, event, triage job,
acknowledgement job and inbound-log row in one transaction); the worker runs those jobs too
while it reads, so its CPU per message includes them.

    .venv/bin/python -m bench.mail [--messages 1000] [--handled 10000] [--engine sqlite] [--quick]

Needs root (Dovecot runs its mail processes as the `dovecot` user) and dovecot-imapd.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from tests.imap_server import DovecotServer, Mailbox

from bench import seed
from bench.common import (
    SECRET_KEY,
    CpuMeter,
    LoadResult,
    ProcessGroup,
    Req,
    drop_database,
    emit_json,
    free_port,
    install_signal_handlers,
    log,
    machine_info,
    markdown_table,
    migrate,
    pg_url,
    pick_loadgen,
    recreate_database,
    run_load,
    service_env,
    ticketing_cli,
    wait_http,
    write_requests,
)
from ticketing.db import Database, new_id, utcnow
from ticketing.mail.models import InboundEmail, MailboxState

PG_DB = "bench_mail"
TARGET_RATE = 50.0
TARGET_GROWTH = 0.8


def bench_message(n: int, run: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sender {n % 100} <sender{n % 100}@bench.example>"
    msg["To"] = "support@bench.example"
    msg["Subject"] = f"Report export times out ({run} {n})"
    msg["Message-ID"] = f"<{run}-{n}@bench.example>"
    msg["Date"] = "Mon, 03 Nov 2025 10:00:00 +0000"
    msg.set_content(
        "Since this morning the CSV export of the monthly report fails with a timeout when the "
        "report has more than ten thousand rows. Steps: open Reports, pick March, click "
        f"Export.\n\nThanks,\nSender {n % 100}\n"
    )
    msg.add_alternative(
        "<p>Since this morning the CSV export of the monthly report fails with a timeout.</p>",
        subtype="html",
    )
    return msg.as_bytes()


async def count_log(db: Database) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(InboundEmail)) or 0)


async def wait_reading(db: Database, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.sessionmaker() as session:
            row = await session.get(MailboxState, "imap")
        if row is not None and row.holder and row.status == "ok":
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the worker did not start reading the mailbox")


async def mail_round(
    db: Database, mailbox: Mailbox, worker_pid: int, n: int, run: str
) -> dict[str, Any]:
    before = await count_log(db)
    messages = [bench_message(i, run) for i in range(n)]
    started = time.monotonic()
    with CpuMeter(worker_pid) as cpu:
        append = asyncio.create_task(asyncio.to_thread(mailbox.append, messages))
        while await count_log(db) < before + n:
            if time.monotonic() - started > 600:
                raise TimeoutError(f"{run}: not every message was handled in 10 minutes")
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        await append
    cpu_ms = (cpu.process_pct or 0) * 10 * elapsed / n
    result = {
        "messages": n,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(n / elapsed, 1),
        "worker_cpu_ms_per_message": round(cpu_ms, 2),
        "machine_busy_pct": round(cpu.machine_pct or 0, 1),
        "inbox_left": mailbox.count("INBOX"),
    }
    log(f"  {run}: {result}")
    return result


async def fill_handled(db: Database, mailbox: Mailbox, n: int) -> None:
    """`n` messages already handled: in the done folder, and in the inbound log."""
    log(f"filling the done folder and the inbound log with {n:,} handled messages")
    for start in range(0, n, 1000):
        chunk = range(start, min(n, start + 1000))
        await asyncio.to_thread(
            mailbox.append, [bench_message(i, "handled") for i in chunk], "Processed"
        )
        rows = [
            {
                "id": new_id(),
                "mailbox_key": f"0:{i + 1}",  # an earlier UIDVALIDITY: never a current key
                "message_id": f"<handled-{i}@bench.example>",
                "from_address": f"sender{i % 100}@bench.example",
                "subject": f"handled {i}",
                "size": 1500,
                "received_at": utcnow(),
                "outcome": "ticket",
            }
            for i in chunk
        ]
        async with db.transaction() as session:
            await session.execute(insert(InboundEmail), rows)


def api_create(
    args: argparse.Namespace, procs: ProcessGroup, workdir: Path, url: str, tokens: list[str]
) -> LoadResult:
    port = free_port()
    settings = {
        "database_url": url,
        "secret_key": SECRET_KEY,
        "worker": "external",
        "ticket_create_per_minute": 10_000_000,
        "log_level": "WARNING",
    }
    api = procs.start(
        "api",
        [*ticketing_cli("serve"), "--host", "127.0.0.1", "--port", str(port)],
        env=service_env(settings),
        cwd=workdir,
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_http(f"{base_url}/health/ready", api)
    path = write_requests(
        workdir / "create.tsv", [Req("POST", "/tickets/create", t) for t in tokens]
    )
    tool = pick_loadgen(args.loadgen)
    run_load(tool, base_url, path, connections=args.connections, duration=2, server_pid=api.pid)
    result = run_load(
        tool,
        base_url,
        path,
        connections=args.connections,
        duration=args.duration,
        server_pid=api.pid,
    )
    log(f"  API create: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms")
    procs.stop(api)
    return result


async def amain(args: argparse.Namespace) -> None:
    install_signal_handlers()
    workdir = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    server = DovecotServer()
    server.start()
    if args.engine == "postgres":
        await recreate_database(PG_DB)
        url = pg_url(PG_DB)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'bench_mail.db'}"
    try:
        with ProcessGroup(workdir) as procs:
            migrate(url, workdir)
            db = Database(url)
            try:
                people = await seed.seed_people(db, 50, 2)
                tokens = [people.tokens[u] for u in people.user_ids]
                log("API: POST /tickets/create")
                create = api_create(args, procs, workdir, url, tokens)

                mailbox = server.new_mailbox()
                settings: dict[str, object] = {
                    "database_url": url,
                    "secret_key": SECRET_KEY,
                    "log_level": "WARNING",
                    "ticket_create_per_minute": 10_000_000,
                    "imap_lease_seconds": 30,
                } | mailbox.settings()
                worker = procs.start(
                    "worker", ticketing_cli("worker"), env=service_env(settings), cwd=workdir
                )
                await wait_reading(db)
                # One-time costs (first imports, the reply parser's patterns) stay out of it.
                log("mail: warm-up (20 messages)")
                await mail_round(db, mailbox, worker.pid, 20, "warmup")
                log("mail: empty done folder")
                empty = await mail_round(db, mailbox, worker.pid, args.messages, "empty")
                await fill_handled(db, mailbox, args.handled)
                log(f"mail: {args.handled:,} handled messages")
                full = await mail_round(db, mailbox, worker.pid, args.messages, "full")
                procs.stop(worker)
            finally:
                await db.dispose()
    finally:
        server.destroy()
        if args.engine == "postgres" and not args.keep_db:
            await drop_database(PG_DB)

    growth = full["messages_per_s"] / empty["messages_per_s"]
    targets = {
        "messages_per_s": {
            "target": f">= {TARGET_RATE:g}",
            "value": empty["messages_per_s"],
            "pass": empty["messages_per_s"] >= TARGET_RATE,
        },
        "no_growth": {
            "target": f">= {TARGET_GROWTH:g}",
            "value": round(growth, 2),
            "pass": growth >= TARGET_GROWTH,
        },
    }
    print(f"## Mail vs API create ({args.engine}, one reading process)\n")
    print(
        markdown_table(
            ["path", "items", "seconds", "items/s", "CPU ms/item", "p99 ms", "machine busy %"],
            [
                [
                    "API POST /tickets/create",
                    create.requests,
                    round(create.duration_s, 1),
                    round(create.rps, 1),
                    _round(create.server_cpu_ms_per_request),
                    create.p99_ms,
                    _round(create.machine_busy_pct),
                ],
                [
                    "mail, empty done folder",
                    empty["messages"],
                    empty["seconds"],
                    empty["messages_per_s"],
                    empty["worker_cpu_ms_per_message"],
                    "",
                    empty["machine_busy_pct"],
                ],
                [
                    f"mail, {args.handled:,} handled",
                    full["messages"],
                    full["seconds"],
                    full["messages_per_s"],
                    full["worker_cpu_ms_per_message"],
                    "",
                    full["machine_busy_pct"],
                ],
            ],
        )
    )
    print()
    print(
        markdown_table(
            ["target", "wanted", "measured", "result"],
            [
                [k, v["target"], v["value"], "PASS" if v["pass"] else "FAIL"]
                for k, v in targets.items()
            ],
        )
    )
    emit_json(
        {
            "engine": args.engine,
            "machine": machine_info(),
            "api_create": create.figures(),
            "mail_empty": empty,
            "mail_handled": full | {"handled": args.handled},
            "targets": targets,
        }
    )


def _round(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--handled", type=int, default=10_000)
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--duration", type=float, default=10.0, help="API create seconds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--quick", action="store_true", help="200 messages, 2,000 handled, 5 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.handled, args.duration = 200, 2000, 5.0
    return args


def main() -> None:
    asyncio.run(amain(parse_args()))


if __name__ == "__main__":
    sys.exit(main())
