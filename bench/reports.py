"""The summary report (GET /admin/reports/summary) at 100,000 tickets, on PostgreSQL and SQLite.

For each engine: a fresh database (`ticketing db upgrade`'s migrations), an admin, moderators
and users, and `--tickets` tickets spread over `--days` days with the columns the report reads
(statuses, priorities, types, assignees, first responses, resolutions, SLA states, analysis
outcomes) and triage corrections on 2% of them. Then, one request at a time through the real
app (httpx's ASGI transport: the token check, the queries, the JSON), `--calls` calls of each:

- baseline: `SELECT count(*) FROM tickets` through the same engine (one aggregate over the
  whole table: what any report costs at least), and `GET /auth/me` (the app's per-request cost);
- the summary of the last 30 days (the default), and of the last 366 days (every ticket: the
  largest period allowed);
- the CSV of the last 30 days (fewer calls: it is one row per ticket).

Prints p50/p99 per scenario and the ratio to the count(*) baseline; target: summary p99 under
100 ms at 100,000 tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import Table, func, insert, select, text

from bench.common import (
    SECRET_KEY,
    drop_database,
    emit_json,
    install_signal_handlers,
    loadavg,
    log,
    machine_info,
    markdown_table,
    percentile,
    pg_url,
    postgres_version,
    recreate_database,
    timed,
)
from bench.seed import MODERATOR_SKILLS, People, seed_people
from ticketing.app import create_app
from ticketing.config import Settings
from ticketing.db import Database, new_id
from ticketing.migrate import upgrade_database
from ticketing.runtime import build_runtime
from ticketing.tickets.models import Ticket
from ticketing.triage.models import TriageCorrection

TICKETS = cast(Table, Ticket.__table__)
CORRECTIONS = cast(Table, TriageCorrection.__table__)
DATABASE = "bench_reports"
TARGET_P99_MS = 100.0


def report_rows(
    n: int, people: People, now: datetime, days: int, seed: int = 12
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`n` tickets spread evenly over the `days` before `now`, and corrections on 2%."""
    rng = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    tickets: list[dict[str, Any]] = []
    corrections: list[dict[str, Any]] = []
    for i in range(n):
        created = now - timedelta(seconds=span * (i + 0.5) / n)
        age_minutes = (now - created).total_seconds() / 60
        status = rng.choices(
            ["open", "in_progress", "waiting", "resolved", "closed"], weights=[10, 8, 4, 50, 28]
        )[0]
        if age_minutes > 3 * 24 * 60 and status in ("open", "in_progress", "waiting"):
            status = rng.choice(["resolved", "closed", status])  # old tickets are mostly done
        assigned = rng.random() < 0.9
        responded = min(age_minutes, rng.expovariate(1 / 120)) if rng.random() < 0.85 else None
        resolved = status in ("resolved", "closed")
        resolution = min(age_minutes, rng.lognormvariate(6.5, 1.0)) if resolved else None
        if resolved:
            sla = "met" if rng.random() < 0.85 else "breached"
        else:
            sla = rng.choices(["on_track", "at_risk", "breached"], weights=[70, 15, 15])[0]
        fallback = rng.random() < 0.08
        ticket_id = new_id()
        tickets.append(
            {
                "id": ticket_id,
                "number": i + 1,
                "source": "email" if rng.random() < 0.3 else "web",
                "title": f"Report bench ticket {i}",
                "description": "The export of the monthly invoice report times out.",
                "status": status,
                "priority": rng.choice(["low", "medium", "high", "urgent"]),
                "ticket_type": rng.choice(["bug", "feature", "support", "technical", "other"]),
                "required_skills": rng.choice(MODERATOR_SKILLS),
                "analysis_status": "fallback" if fallback else "ai",
                "analysis_provider": "local" if fallback else "gemini",
                "analyzed_at": created + timedelta(seconds=2),
                "created_by": rng.choice(people.user_ids),
                "assigned_to": rng.choice(people.moderator_ids) if assigned else None,
                "assigned_at": created + timedelta(seconds=3) if assigned else None,
                "first_responded_at": (
                    created + timedelta(minutes=responded) if responded is not None else None
                ),
                "resolved_at": (
                    created + timedelta(minutes=resolution) if resolution is not None else None
                ),
                "first_response_due_at": created + timedelta(hours=8),
                "resolution_due_at": created + timedelta(days=3),
                "sla_status": sla,
                "sla_response_breached": sla == "breached" and rng.random() < 0.5,
                "sla_resolution_breached": sla == "breached",
                "created_at": created,
                "updated_at": created + timedelta(seconds=3),
            }
        )
        if rng.random() < 0.02:
            corrections.append(
                {
                    "id": new_id(),
                    "ticket_id": ticket_id,
                    "field": rng.choice(["priority", "ticket_type", "required_skills"]),
                    "before": json.dumps("low"),
                    "after": json.dumps("high"),
                    "provider": "local" if fallback else "gemini",
                    "created_at": created + timedelta(hours=1),
                }
            )
    return tickets, corrections


async def seed_tickets(
    db: Database, n: int, people: People, now: datetime, days: int
) -> tuple[int, int]:
    """COPY on PostgreSQL, batched executemany on SQLite. Returns (tickets, corrections)."""
    tickets, corrections = report_rows(n, people, now, days)
    if db.dialect == "postgresql":
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            apg: Any = raw.driver_connection
            for table, rows, json_columns in (
                ("tickets", tickets, {"required_skills"}),
                ("triage_corrections", corrections, set()),
            ):
                columns = list(rows[0])
                records = [
                    tuple(json.dumps(r[c]) if c in json_columns else r[c] for c in columns)
                    for r in rows
                ]
                for start in range(0, len(records), 10_000):  # each within the 30 s timeout
                    await apg.copy_records_to_table(
                        table, records=records[start : start + 10_000], columns=columns
                    )
            await apg.execute("VACUUM ANALYZE tickets")
            await apg.execute("VACUUM ANALYZE triage_corrections")
            await apg.execute("ANALYZE users")
    else:
        for row in corrections:
            row["before"], row["after"] = "low", "high"
        async with db.transaction() as session:
            for start in range(0, n, 10_000):
                await session.execute(insert(TICKETS), tickets[start : start + 10_000])
            if corrections:
                await session.execute(insert(CORRECTIONS), corrections)
    return len(tickets), len(corrections)


async def measure(
    label: str, call: Callable[[], Awaitable[Any]], calls: int, warmup: int
) -> dict[str, Any]:
    for _ in range(warmup):
        await call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    figures = {
        "scenario": label,
        "calls": calls,
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "max_ms": round(times[-1], 2),
    }
    log(f"  {label}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")
    return figures


async def run_engine(engine: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if engine == "postgres":
        await recreate_database(DATABASE)
        url = pg_url(DATABASE)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'reports.db'}"
    try:
        with timed(f"{engine}: migrate"):
            await asyncio.to_thread(upgrade_database, url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            secret_key=SECRET_KEY,
            worker="external",
            ai_provider="local",
            email_backend="console",
            log_level="WARNING",
        )
        runtime = build_runtime(settings)
        try:
            return await _measure_engine(engine, args, runtime)
        finally:
            await runtime.close()
    finally:
        if engine == "postgres" and not args.keep_db:
            await drop_database(DATABASE)


async def _measure_engine(engine: str, args: argparse.Namespace, runtime: Any) -> dict[str, Any]:
    db: Database = runtime.db
    now = datetime.now(UTC)
    people = await seed_people(db, n_users=args.users, n_moderators=args.moderators)
    with timed(f"{engine}: {args.tickets:,} tickets over {args.days} days") as seeding:
        n_tickets, n_corrections = await seed_tickets(db, args.tickets, people, now, args.days)
    async with db.transaction() as session:
        in_30_days = await session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.created_at >= now - timedelta(days=30))
        )

    app = create_app(runtime.settings, runtime)
    headers = {"Authorization": f"Bearer {people.tokens[people.admin_id]}"}
    scenarios: list[dict[str, Any]] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers
        ) as client,
    ):

        async def count_all() -> None:
            async with db.sessionmaker() as session:
                await session.scalar(text("SELECT count(*) FROM tickets"))

        async def get(path: str, params: dict[str, str] | None = None) -> None:
            response = await client.get(path, params=params)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")

        last_year = {"from": (now - timedelta(days=366)).isoformat(), "to": now.isoformat()}
        plan: list[tuple[str, Callable[[], Awaitable[Any]], int]] = [
            ("baseline: SELECT count(*) FROM tickets", count_all, args.calls),
            ("baseline: GET /auth/me", lambda: get("/auth/me"), args.calls),
            ("summary, last 30 days", lambda: get("/admin/reports/summary"), args.calls),
            (
                "summary, last 366 days (all tickets)",
                lambda: get("/admin/reports/summary", last_year),
                args.calls,
            ),
            (
                "CSV, last 30 days",
                lambda: get("/admin/reports/summary", {"format": "csv"}),
                args.csv_calls,
            ),
        ]
        log(f"{engine}: measuring ({args.calls} calls each, one at a time) ...")
        for label, call, calls in plan:
            scenarios.append(await measure(label, call, calls, args.warmup))

    baseline = scenarios[0]["p50_ms"]
    for s in scenarios:
        s["x_count_p50"] = round(s["p50_ms"] / baseline, 1) if baseline else None
    summaries = [s for s in scenarios if s["scenario"].startswith("summary")]
    worst = max(s["p99_ms"] for s in summaries)
    return {
        "engine": engine,
        "tickets": n_tickets,
        "corrections": n_corrections,
        "tickets_in_last_30_days": int(in_30_days or 0),
        "seed_seconds": round(seeding["seconds"], 1),
        "scenarios": scenarios,
        "summary_worst_p99_ms": worst,
        "pass": worst < TARGET_P99_MS,
    }


def print_report(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        print(
            f"\n### {run['engine']}: {run['tickets']:,} tickets "
            f"({run['tickets_in_last_30_days']:,} in the last 30 days), "
            f"{run['corrections']:,} corrections\n"
        )
        print(
            markdown_table(
                ["scenario", "calls", "p50 ms", "p99 ms", "max ms", "p50 / count(*)"],
                [
                    [
                        s["scenario"],
                        s["calls"],
                        s["p50_ms"],
                        s["p99_ms"],
                        s["max_ms"],
                        s["x_count_p50"],
                    ]
                    for s in run["scenarios"]
                ],
            )
        )
    print("\n### Target\n")
    print(
        markdown_table(
            ["engine", "target", "measured", "result"],
            [
                [
                    run["engine"],
                    f"summary p99 < {TARGET_P99_MS:.0f} ms",
                    f"{run['summary_worst_p99_ms']:.1f} ms",
                    run["pass"],
                ]
                for run in runs
            ],
        )
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Summary report latency at 100,000 tickets.")
    p.add_argument("--engines", default="postgres,sqlite", help="comma list: postgres, sqlite")
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--days", type=int, default=90, help="the tickets are spread over these days")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--moderators", type=int, default=20)
    p.add_argument("--calls", type=int, default=50, help="measured calls per scenario")
    p.add_argument("--csv-calls", type=int, default=5, help="measured calls of the CSV")
    p.add_argument("--warmup", type=int, default=3, help="calls before measuring")
    p.add_argument("--keep-db", action="store_true", help="keep the bench_reports database")
    p.add_argument("--quick", action="store_true", help="smoke run: 5,000 tickets, 10 calls")
    args = p.parse_args(argv)
    if args.quick:
        args.tickets, args.calls, args.csv_calls, args.warmup = 5_000, 10, 2, 1
    return args


async def amain(args: argparse.Namespace) -> None:
    install_signal_handlers()
    started = time.monotonic()
    machine = machine_info()
    load_before = loadavg()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    pg_version = await postgres_version() if "postgres" in engines else None
    workdir = Path(tempfile.mkdtemp(prefix="bench_reports_"))
    try:
        runs = [await run_engine(engine, args, workdir) for engine in engines]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(runs)
    total = time.monotonic() - started
    print(
        f"\nTook {total:.0f} s. Machine: {machine['nproc']} cores ({machine['cpu']}), "
        f"{machine['mem_total']} RAM, PostgreSQL {pg_version}, SQLite {machine['sqlite']}. "
        f"Load average before {load_before}, after {loadavg()}.\n"
    )
    emit_json(
        {
            "bench": "reports",
            "machine": machine
            | {"postgresql": pg_version, "loadavg_before": load_before, "loadavg_after": loadavg()},
            "settings": {
                k: getattr(args, k)
                for k in ("tickets", "days", "users", "moderators", "calls", "csv_calls", "warmup")
            },
            "engines": {run["engine"]: run for run in runs},
            "pass": all(run["pass"] for run in runs),
            "seconds": round(total, 1),
        }
    )


def main() -> None:
    asyncio.run(amain(parse_args()))


if __name__ == "__main__":
    main()
