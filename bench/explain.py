"""The plans of bench/api.py's list scenarios, on a database a run kept.

Runs each scenario's query through the real code (`tickets.service.list_tickets`, limit 50 as
the API's default) and prints, for the ticket queries it sends, PostgreSQL's
`EXPLAIN (ANALYZE, BUFFERS)` or SQLite's `EXPLAIN QUERY PLAN`, plus the wall time of the
query itself (best of --repeat, after one run to warm the cache).

    .venv/bin/python -m bench.api --tickets 1000000 --users 50000 --moderators 200 \\
        --seed-only --keep-db --pg-db million_bench_api --sqlite-file /tmp/m.db
    .venv/bin/python -m bench.explain --pg-db million_bench_api
    .venv/bin/python -m bench.explain --sqlite-file /tmp/m.db
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, select

from bench import seed
from bench.common import pg_url
from ticketing.db import Database
from ticketing.tickets import service
from ticketing.tickets.repository import TicketFilters
from ticketing.users.models import User
from ticketing.vocabulary import Priority, TicketStatus

LIMIT = 50  # the API's default page


def scenarios(
    people: seed.People, users: dict[str, User], deep_cursor: str
) -> list[tuple[str, User, TicketFilters, dict[str, Any]]]:
    admin = users[people.admin_id]
    moderator = users[people.moderator_ids[0]]
    return [
        ("admin: newest page", admin, TicketFilters(), {}),
        ("user: own tickets", users[people.user_ids[0]], TicketFilters(), {}),
        ("moderator: assigned or own", moderator, TicketFilters(), {}),
        ("moderator queue", moderator, TicketFilters(), {"queue_of": moderator.id}),
        (
            "admin filter: status+priority",
            admin,
            TicketFilters(status=TicketStatus.open, priority=Priority.high),
            {},
        ),
        ("admin filter: assigned_to", admin, TicketFilters(assigned_to=moderator.id), {}),
        (f"admin q={seed.COMMON_WORD} (common)", admin, TicketFilters(q=seed.COMMON_WORD), {}),
        (f"admin q={seed.RARE_WORD} (rare)", admin, TicketFilters(q=seed.RARE_WORD), {}),
        ("admin deep cursor (50%)", admin, TicketFilters(), {"cursor": deep_cursor}),
    ]


async def main(args: argparse.Namespace) -> None:
    url = pg_url(args.pg_db) if args.pg_db else f"sqlite+aiosqlite:///{args.sqlite_file}"
    db = Database(url)
    postgres = db.dialect == "postgresql"
    captured: list[tuple[str, Any]] = []

    @event.listens_for(db.engine.sync_engine, "after_cursor_execute")
    def explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("SELECT") or "FROM tickets" not in statement:
            return
        captured.append((statement, params))

    people = await seed.load_people(db)
    assert people is not None, "no people: seed the database first (bench.api --seed-only)"
    total = await seed.count_tickets(db)
    (deep,) = await seed.deep_cursors(db, [total // 2])
    async with db.transaction() as session:
        ids = [people.admin_id, people.user_ids[0], people.moderator_ids[0]]
        users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids))))}
    print(f"# {db.dialect}: {total:,} tickets\n")
    for name, user, filters, extra in scenarios(people, users, deep):

        async def run(
            user: User = user, filters: TicketFilters = filters, extra: dict[str, Any] = extra
        ) -> None:
            async with db.transaction() as session:
                await service.list_tickets(
                    session,
                    user,
                    filters,
                    limit=LIMIT,
                    order="newest",
                    **({"cursor": None} | extra),
                )

        best = await timed(run, args.repeat)
        captured.clear()
        await run()
        print(f"## {name}: best of {args.repeat} {best:.2f} ms (the whole list_tickets call)\n")
        for statement, params in captured:
            async with db.engine.connect() as conn:
                raw = await conn.get_raw_connection()
                cur: Any = raw.driver_connection
                if postgres:
                    rows = await cur.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *params)
                    plan = [r[0] for r in rows]
                else:
                    async with cur.execute("EXPLAIN QUERY PLAN " + statement, params) as c:
                        plan = [f"{'  ' * (r[1] > 0)}{r[3]}" for r in await c.fetchall()]
            print("```")
            print(" ".join(statement.split())[:600])
            print("---")
            print("\n".join(plan))
            print("```\n")


async def timed(run: Callable[[], Awaitable[None]], repeat: int) -> float:
    await run()  # warm the cache once, as a first visitor would
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pg-db", help="a PostgreSQL database kept by bench.api --keep-db")
    where.add_argument("--sqlite-file", help="a SQLite file of bench.api --sqlite-file")
    p.add_argument("--repeat", type=int, default=5)
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
