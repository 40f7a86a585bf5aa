"""Where a message's time goes: the reading path alone, in this process, no job worker.

`bench/mail.py` times a real `ticketing worker`, whose CPU per message includes the triage and
email jobs each new ticket queues. This one runs one `MailboxReader.fetch_once()` pass (the
real `handle_message`) over `--messages` appended messages in this process and splits the cost:

- CPU per message of the whole pass (user and system, every thread: IMAP and parsing run in
  threads), and wall-clock messages/s;
- SQL statements per message (counted on the engine), and CPU per statement;
- parsing alone (`parse_email`, the same messages, in a loop);
- with `--cprofile FILE`, a cProfile (CPU time, event-loop thread) of the pass, for
  `python -m pstats FILE`.

    .venv/bin/python -m bench.mail_path [--messages 300] [--engine sqlite] [--cprofile out.prof]

Needs root and dovecot-imapd, like bench/mail.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from tests.imap_server import DovecotServer

from bench.common import (
    SECRET_KEY,
    drop_database,
    emit_json,
    loadavg,
    log,
    markdown_table,
    migrate,
    pg_url,
    recreate_database,
)
from bench.mail import bench_message
from ticketing.config import Settings
from ticketing.flows import make_mailbox_reader
from ticketing.mail.parsing import parse_email
from ticketing.runtime import build_runtime

PG_DB = "bench_mail_path"


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-mail-path-"))
    server = DovecotServer()
    server.start()
    if args.engine == "postgres":
        await recreate_database(PG_DB)
        url = pg_url(PG_DB)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    try:
        migrate(url, workdir)
        mailbox = server.new_mailbox()
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=url,
            secret_key=SECRET_KEY,
            log_level="WARNING",
            ticket_create_per_minute=10_000_000,
            email_backend="console",
            ai_provider="local",
            **mailbox.settings(),
        )
        runtime = build_runtime(settings)
        try:
            reader = make_mailbox_reader(runtime, name="bench")
            log("warm-up (20 messages)")
            mailbox.append([bench_message(i, "warmup") for i in range(20)])
            await reader.fetch_once()
            statements = 0

            def count(*_: Any) -> None:
                nonlocal statements
                statements += 1

            event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", count)
            mailbox.append([bench_message(i, "path") for i in range(args.messages)])
            profile = cProfile.Profile(time.process_time) if args.cprofile else None
            load_before = loadavg()
            user0, sys0 = _cpu()
            started = time.monotonic()
            if profile is not None:
                profile.enable()
            counts = await reader.fetch_once()
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.cprofile)
            elapsed = time.monotonic() - started
            user1, sys1 = _cpu()
            assert counts["ticket"] == args.messages, counts
        finally:
            await runtime.close()
    finally:
        server.destroy()
        if args.engine == "postgres":
            await drop_database(PG_DB)

    raw = [bench_message(i, "parse") for i in range(args.messages)]
    for message in raw[:20]:
        parse_email(message)
    parse_started = time.process_time()
    for message in raw:
        parse_email(message)
    parse_ms = (time.process_time() - parse_started) * 1000 / len(raw)

    n = args.messages
    cpu_ms = ((user1 - user0) + (sys1 - sys0)) * 1000 / n
    return {
        "engine": args.engine,
        "messages": n,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(n / elapsed, 1),
        "cpu_ms_per_message": round(cpu_ms, 2),
        "user_ms_per_message": round((user1 - user0) * 1000 / n, 2),
        "system_ms_per_message": round((sys1 - sys0) * 1000 / n, 2),
        "statements_per_message": round(statements / n, 1),
        "parse_ms_per_message": round(parse_ms, 2),
        "cpu_ms_per_statement_excluding_parse": round((cpu_ms - parse_ms) * n / statements, 3),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "profiled": "yes" if args.cprofile else "no",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--cprofile", metavar="FILE", help="write a CPU-time cProfile here")
    figures = asyncio.run(amain(parser.parse_args()))
    print(f"## The reading path alone ({figures['engine']}, one process, no job worker)\n")
    print(markdown_table(list(figures), [list(figures.values())]))
    emit_json(figures)


if __name__ == "__main__":
    sys.exit(main())
