"""Seed data for the benchmarks: people (with minted tokens) and 100,000 tickets, fast."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text

from bench.common import SECRET_KEY, log
from ticketing.auth.tokens import issue_access_token
from ticketing.config import Settings
from ticketing.db import Database, new_id
from ticketing.pagination import encode_cursor
from ticketing.tickets.models import Ticket
from ticketing.users.models import User

TICKETS = cast(Table, Ticket.__table__)
USERS = cast(Table, User.__table__)

MODERATOR_SKILLS = [
    ["python", "postgresql"],
    ["python", "django"],
    ["javascript", "css"],
    ["networking", "linux"],
    ["billing", "accounts"],
    ["postgresql", "linux"],
    ["python", "api"],
    ["security", "linux"],
]

# Ticket text for the 100,000 seeded tickets. Each word is in roughly a quarter of them;
# COMMON_WORD is one of them and RARE_WORD is in one ticket of 2,000.
_WORDS = (
    "account access admin alert api app archive audit backup balance batch billing browser "
    "build cache card cart certificate chart checkout client cluster config connection "
    "console contract cookie cron css customer dashboard data database deploy device disk "
    "dns docker domain download email encryption endpoint error event feature field file "
    "filter firewall form gateway graph header import index invoice job kubernetes label "
    "latency layout ledger license limit linux load log login memory menu merge message "
    "metric migration mobile monitor network notification order page password payment "
    "permission plan plugin policy portal printer profile proxy query queue quota receipt "
    "record refund release replica request role router schedule schema screen search "
    "server session settings shipment signup slow sso storage subscription sync table tax "
    "team template tenant timeout token trace upload user vendor version vpn warehouse "
    "webhook widget window workflow"
)
VOCABULARY = _WORDS.split()
COMMON_WORD = "invoice"
RARE_WORD = "flamingo"
RARE_EVERY = 2000


@dataclass
class People:
    admin_id: str
    moderator_ids: list[str]
    user_ids: list[str]
    tokens: dict[str, str] = field(default_factory=dict)  # user id -> bearer token


def token_settings() -> Settings:
    return Settings(_env_file=None, secret_key=SECRET_KEY, access_token_expire_minutes=24 * 60)


async def seed_people(db: Database, n_users: int, n_moderators: int) -> People:
    """An admin, moderators with skills and users, inserted directly; tokens minted for all.

    Tokens come from `ticketing.auth.tokens.issue_access_token` with the server's SECRET_KEY:
    every request still goes through the real token check (signature, revocation, user row).
    """
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []

    def person(email: str, role: str, skills: list[str]) -> str:
        uid = new_id()
        rows.append(
            {
                "id": uid,
                "email": email,
                "name": email.split("@")[0],
                "role": role,
                "skills": skills,
                "is_active": True,
                "token_version": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        return uid

    admin_id = person("admin@bench.example", "admin", [])
    moderator_ids = [
        person(f"mod{i}@bench.example", "moderator", MODERATOR_SKILLS[i % len(MODERATOR_SKILLS)])
        for i in range(n_moderators)
    ]
    user_ids = [person(f"user{i}@bench.example", "user", []) for i in range(n_users)]
    async with db.transaction() as session:
        for start in range(0, len(rows), 1000):
            await session.execute(insert(USERS), rows[start : start + 1000])
    people = People(admin_id, moderator_ids, user_ids)
    settings = token_settings()
    for uid in [admin_id, *moderator_ids, *user_ids]:
        people.tokens[uid] = issue_access_token(settings, uid, 0)[0]
    return people


async def load_people(db: Database) -> People | None:
    """The people a previous run seeded into this database (tokens minted again), or None."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(User.id, User.role, User.email).order_by(User.created_at, User.email)
            )
        ).all()
    admins = [r.id for r in rows if r.role == "admin"]
    if not admins:
        return None

    # In the order seed_people made them (user0, user1, ...), so runs pick the same people.
    def order(r: Any) -> int:
        digits = "".join(ch for ch in r.email.split("@")[0] if ch.isdigit())
        return int(digits or 0)

    people = People(
        admins[0],
        [r.id for r in sorted((r for r in rows if r.role == "moderator"), key=order)],
        [r.id for r in sorted((r for r in rows if r.role == "user"), key=order)],
    )
    settings = token_settings()
    for uid in [people.admin_id, *people.moderator_ids, *people.user_ids]:
        people.tokens[uid] = issue_access_token(settings, uid, 0)[0]
    return people


def _text(rng: random.Random, words: int, rare: bool) -> str:
    picked = rng.choices(VOCABULARY, k=words)
    if rare:
        picked[rng.randrange(words)] = RARE_WORD
    return " ".join(picked)


# A helpdesk's mix: what was filed in the last RECENT_DAYS is still being worked on in part;
# what is older is nearly all resolved or closed. Over three years that is about 3 % open and
# 2 % in progress (the rest waiting, resolved or closed).
SPAN_DAYS = 3 * 365
RECENT_DAYS = 60
_STATUSES = ["open", "in_progress", "waiting", "resolved", "closed"]
_RECENT_WEIGHTS = [30, 20, 10, 25, 15]
_OLD_WEIGHTS = [1, 0.6, 0.4, 20, 78]
STAFF_FILED = 0.02  # tickets filed by staff themselves (what "assigned or own" adds)


def ticket_rows(
    n: int,
    people: People,
    newest: datetime,
    first_number: int,
    seed: int = 5,
    chunk: int = 20_000,
) -> Iterator[list[dict[str, Any]]]:
    """`n` realistic tickets in chunks, newest first, all older than `newest`, spread evenly
    over SPAN_DAYS (about 90 s apart at a million); numbered from `first_number` upwards,
    oldest lowest.

    Requesters file unevenly (a few file a lot), staff carry unequal loads, and the statuses
    follow the tickets' age (see _RECENT_WEIGHTS, _OLD_WEIGHTS).
    """
    rng = random.Random(seed)
    step = timedelta(days=SPAN_DAYS) / max(n, 1)
    recent = timedelta(days=RECENT_DAYS)
    requester_weights = list(accumulate(rng.paretovariate(1.2) for _ in people.user_ids))
    staff_weights = list(accumulate(rng.uniform(0.5, 1.5) for _ in people.moderator_ids))
    rows: list[dict[str, Any]] = []
    for i in range(n):
        created = newest - step * (i + 1) + timedelta(seconds=rng.random())
        status = rng.choices(
            _STATUSES, weights=_RECENT_WEIGHTS if newest - created < recent else _OLD_WEIGHTS
        )[0]
        done = status in ("resolved", "closed")
        # Some new tickets wait for an assignee with the right skills.
        assigned = status != "open" or rng.random() < 0.85
        rare = i % RARE_EVERY == RARE_EVERY // 2
        if rng.random() < STAFF_FILED:
            creator = rng.choice(people.moderator_ids)
        else:
            creator = rng.choices(people.user_ids, cum_weights=requester_weights)[0]
        assignee = (
            rng.choices(people.moderator_ids, cum_weights=staff_weights)[0] if assigned else None
        )
        priority = rng.choices(["low", "medium", "high", "urgent"], weights=[30, 45, 20, 5])[0]
        response_due = created + timedelta(hours=4)
        resolution_due = created + timedelta(days=2)
        responded = created + timedelta(minutes=rng.randint(5, 600)) if assigned else None
        resolved = created + timedelta(hours=rng.uniform(1, 96)) if done else None
        if done:
            met = resolved is not None and resolved <= resolution_due
            sla_status = "met" if met and responded and responded <= response_due else "breached"
            next_due = None
        else:
            sla_status = rng.choices(["on_track", "at_risk", "breached"], weights=[70, 15, 15])[0]
            next_due = response_due if responded is None else resolution_due
        rows.append(
            {
                "id": new_id(),
                "number": first_number + n - 1 - i,
                "source": "email" if rng.random() < 0.2 else "web",
                "title": _text(rng, 6, False).capitalize(),
                "description": _text(rng, 40, rare).capitalize() + ".",
                "status": status,
                "priority": priority,
                "ticket_type": rng.choice(["bug", "feature", "support", "technical", "other"]),
                "required_skills": rng.choice(MODERATOR_SKILLS),
                "helpful_notes": "Check the logs first.",
                "analysis_status": "ai" if rng.random() < 0.9 else "fallback",
                "analysis_provider": "gemini",
                "analysis_model": "gemini-2.5-flash",
                "analysis_error": None,
                "analyzed_at": created + timedelta(seconds=2),
                "analysis_confidence": None,
                "needs_review": False,
                "created_by": creator,
                "assigned_to": assignee,
                "assigned_at": created + timedelta(seconds=3) if assigned else None,
                "assignment_reason": "matched skills: python; 3 open tickets"
                if assigned
                else "waiting: no moderator with the skills is available",
                "resolved_at": resolved,
                "first_response_due_at": response_due,
                "first_responded_at": responded,
                "resolution_due_at": resolution_due,
                "sla_status": sla_status,
                "sla_next_due_at": next_due,
                "sla_paused_at": None,
                "sla_paused_seconds": 0,
                "sla_response_warned": False,
                "sla_response_breached": sla_status == "breached" and responded is None,
                "sla_resolution_warned": False,
                "sla_resolution_breached": False,
                "created_at": created,
                "updated_at": resolved or responded or created,
            }
        )
        if len(rows) == chunk:
            yield rows
            rows = []
    if rows:
        yield rows


async def count_tickets(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


async def top_up_tickets(db: Database, target: int, people: People) -> tuple[int, float]:
    """Insert tickets until there are `target`, as a bulk load does: the table's secondary
    indexes (and on SQLite the FTS triggers) are dropped, the rows copied in (COPY on
    PostgreSQL, executemany on SQLite, in chunks), then the indexes built again, the FTS
    index rebuilt and the planner statistics refreshed (PostgreSQL: VACUUM ANALYZE).

    Returns (rows inserted, seconds).
    """
    async with db.transaction() as session:
        existing = int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)
        oldest = await session.scalar(select(func.min(Ticket.created_at)))
        top = int(await session.scalar(select(func.max(Ticket.number))) or 0)
    n = target - existing
    if n <= 0:
        return 0, 0.0
    started = time.monotonic()
    chunks = ticket_rows(n, people, oldest or datetime.now(UTC), first_number=top + 1)
    if db.dialect == "postgresql":
        await _copy_postgres(db, chunks)
    else:
        await _insert_sqlite(db, chunks)
    return n, time.monotonic() - started


# Above the engine's statement timeout: building a trigram index over a million tickets takes
# minutes.
BULK_TIMEOUT_S = 3600.0


async def _copy_postgres(db: Database, chunks: Iterator[list[dict[str, Any]]]) -> None:
    columns = [c.name for c in TICKETS.columns]
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        apg: Any = raw.driver_connection
        await apg.execute("SET maintenance_work_mem = '512MB'")
        # Every index but those of constraints (the primary key).
        indexes = await apg.fetch(
            "SELECT i.relname AS indexname, pg_get_indexdef(i.oid) AS indexdef "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'tickets'::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        )
        for index in indexes:
            await apg.execute(f'DROP INDEX "{index["indexname"]}"')
        for rows in chunks:
            records = [
                tuple(json.dumps(r[c]) if c == "required_skills" else r[c] for c in columns)
                for r in rows
            ]
            await apg.copy_records_to_table(
                "tickets", records=records, columns=columns, timeout=BULK_TIMEOUT_S
            )
            log(f"  {len(records):,} tickets copied")
        for index in indexes:
            await apg.execute(index["indexdef"], timeout=BULK_TIMEOUT_S)
        # Numbers drawn from now on follow the seeded ones.
        await apg.execute("SELECT setval('ticket_number_seq', (SELECT max(number) FROM tickets))")
        await apg.execute("VACUUM ANALYZE tickets", timeout=BULK_TIMEOUT_S)
        await apg.execute("ANALYZE users")


async def _insert_sqlite(db: Database, chunks: Iterator[list[dict[str, Any]]]) -> None:
    async with db.transaction() as session:
        schema = (
            await session.execute(
                text(
                    "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'tickets' "
                    "AND type IN ('index', 'trigger') AND sql IS NOT NULL"
                )
            )
        ).all()
        fts = await session.scalar(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tickets_fts'")
        )
        for kind, name, _ in schema:
            await session.execute(text(f'DROP {kind.upper()} "{name}"'))
        for rows in chunks:
            await session.execute(insert(TICKETS), rows)
            log(f"  {len(rows):,} tickets inserted")
        for _, _, sql in schema:
            await session.execute(text(sql))
        if fts:
            await session.execute(text("INSERT INTO tickets_fts(tickets_fts) VALUES('rebuild')"))


async def deep_cursors(db: Database, depths: list[int]) -> list[str]:
    """Opaque cursors, as the API hands them out, `depth` rows into the newest-first list."""
    cursors = []
    async with db.transaction() as session:
        for depth in depths:
            row = (
                await session.execute(
                    select(Ticket.created_at, Ticket.id)
                    .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                    .offset(depth - 1)
                    .limit(1)
                )
            ).one()
            cursors.append(encode_cursor(row.created_at, row.id))
    return cursors
