"""Seed data for the benchmarks: people (with minted tokens) and 100,000 tickets, fast."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select

from bench.common import SECRET_KEY
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


def _text(rng: random.Random, words: int, rare: bool) -> str:
    picked = rng.choices(VOCABULARY, k=words)
    if rare:
        picked[rng.randrange(words)] = RARE_WORD
    return " ".join(picked)


def ticket_rows(
    n: int, people: People, oldest_existing: datetime, seed: int = 5
) -> list[dict[str, Any]]:
    """`n` realistic tickets, all older than `oldest_existing`, one minute apart."""
    rng = random.Random(seed)
    statuses = ["open", "in_progress", "resolved", "closed"]
    rows = []
    for i in range(n):
        created = oldest_existing - timedelta(minutes=i + 1, seconds=rng.random())
        status = rng.choices(statuses, weights=[30, 20, 30, 20])[0]
        assigned = rng.random() < 0.8
        rare = i % RARE_EVERY == RARE_EVERY // 2
        rows.append(
            {
                "id": new_id(),
                "title": _text(rng, 6, False).capitalize(),
                "description": _text(rng, 40, rare).capitalize() + ".",
                "status": status,
                "priority": rng.choice(["low", "medium", "high", "urgent"]),
                "ticket_type": rng.choice(["bug", "feature", "support", "technical", "other"]),
                "required_skills": rng.choice(MODERATOR_SKILLS),
                "helpful_notes": "Check the logs first.",
                "analysis_status": "ai" if rng.random() < 0.9 else "fallback",
                "analysis_provider": "gemini",
                "analysis_model": "gemini-2.5-flash",
                "analysis_error": None,
                "analyzed_at": created + timedelta(seconds=2),
                "created_by": rng.choice(people.user_ids),
                "assigned_to": rng.choice(people.moderator_ids) if assigned else None,
                "assigned_at": created + timedelta(seconds=3) if assigned else None,
                "assignment_reason": "matched skills: python; 3 open tickets" if assigned else None,
                "resolved_at": created + timedelta(hours=5)
                if status in ("resolved", "closed")
                else None,
                "created_at": created,
                "updated_at": created + timedelta(seconds=3),
            }
        )
    return rows


async def count_tickets(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


async def top_up_tickets(db: Database, target: int, people: People) -> tuple[int, float]:
    """Insert tickets until there are `target`: COPY on PostgreSQL, executemany on SQLite.

    Returns (rows inserted, seconds).
    """
    async with db.transaction() as session:
        existing = int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)
        oldest = await session.scalar(select(func.min(Ticket.created_at)))
    n = target - existing
    if n <= 0:
        return 0, 0.0
    rows = ticket_rows(n, people, oldest or datetime.now(UTC))
    started = time.monotonic()
    table = TICKETS
    if db.dialect == "postgresql":
        columns = [c.name for c in table.columns]
        records = [
            tuple(json.dumps(r[c]) if c == "required_skills" else r[c] for c in columns)
            for r in rows
        ]
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            apg: Any = raw.driver_connection
            await apg.copy_records_to_table("tickets", records=records, columns=columns)
            await apg.execute("VACUUM ANALYZE tickets")
            await apg.execute("ANALYZE users")
    else:
        async with db.transaction() as session:
            for start in range(0, n, 10_000):
                await session.execute(insert(table), rows[start : start + 10_000])
    return n, time.monotonic() - started


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
