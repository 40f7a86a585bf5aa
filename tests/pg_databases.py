"""The PostgreSQL databases and roles of one test run, on the server the developer points at.

Several runs may share that server at once (a developer's and CI's, two clones, a run per
container), so each run names what it creates after itself, `<prefix>_<pid>_<random>`, and
drops only what it created, by name. Nothing here terminates other sessions or drops an object
this process did not create: `DROP DATABASE ... WITH (FORCE)` runs only on our own databases,
where every connection is this run's.

A run that is killed leaves its database (and role) behind. A later run never drops it: the pid
in a name only says which process created it on *some* machine or container sharing the server,
so "no such process here" does not prove it is abandoned. Leftovers are listed at the end of the
run instead (`leftovers`), for a person to drop: those that say (in their comment) they were
made on this host by a process that is no longer running, and that nobody is connected to.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from datetime import UTC, datetime

import asyncpg
import pytest

ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# TEST_POSTGRES_DB is a prefix: the run's database is `<prefix>_<pid>_<6 hex digits>`.
PREFIX = os.environ.get("TEST_POSTGRES_DB", "ticketing_test")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
if not _IDENTIFIER.fullmatch(PREFIX) or len(PREFIX) > 32:
    raise ValueError(
        f"TEST_POSTGRES_DB={PREFIX!r}: a prefix of lower-case letters, digits and _, "
        "at most 32 characters (PostgreSQL names stop at 63)"
    )
# The process id says which run this is while it runs; the random part keeps names unique
# across machines and containers whose process ids repeat.
RUN_NAME = f"{PREFIX}_{os.getpid()}_{secrets.token_hex(3)}"
# Names any run with this prefix gives its objects: `<prefix>_<pid>_<hex>[_<purpose>]`.
_ANY_RUN = re.compile(rf"{re.escape(PREFIX)}_(\d+)_[0-9a-f]{{6}}(_[a-z0-9_]+)?")

# Every database and role is commented with where and by which process it was made.
_HOST = socket.gethostname()
_COMMENT = re.compile(r"ticketing test run: host (\S+), pid (\d+), ")

_created_databases: set[str] = set()
_created_roles: set[str] = set()


class PostgresUnreachable(Exception):
    """The admin connection failed: no server there, or it refused us."""


def skip_or_fail(reason: str) -> None:
    """Skip a PostgreSQL test, or fail it when REQUIRE_POSTGRES=1 (as in CI)."""
    if REQUIRE_POSTGRES:
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(f"{reason} (set REQUIRE_POSTGRES=1 to fail instead)")


def run_object_name(purpose: str = "") -> str:
    """The name of a database or role of this run: `RUN_NAME`, or `RUN_NAME_<purpose>`."""
    name = f"{RUN_NAME}_{purpose}" if purpose else RUN_NAME
    if not _IDENTIFIER.fullmatch(name) or len(name) > 63:
        raise ValueError(f"not a usable PostgreSQL name: {name!r}")
    return name


def dsn(database: str, user: str | None = None) -> str:
    """A libpq/asyncpg DSN for `database` on the admin server, as `user` if given."""
    base = ADMIN_DSN.rsplit("/", 1)[0]
    if user is not None:
        scheme, rest = base.split("://", 1)
        rest = rest.rsplit("@", 1)[-1]  # the admin's credentials are not the role's
        base = f"{scheme}://{user}@{rest}"
    return f"{base}/{database}"


def sqlalchemy_url(database: str, user: str | None = None) -> str:
    return dsn(database, user).replace("postgresql://", "postgresql+asyncpg://", 1)


def _comment() -> str:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    return f"ticketing test run: host {_HOST}, pid {os.getpid()}, {started}"


def _left_by_a_dead_local_process(comment: str | None) -> bool:
    match = _COMMENT.match(comment or "")
    if not match or match.group(1) != _HOST:
        return False  # made elsewhere: whether its run still lives cannot be told from here
    try:
        os.kill(int(match.group(2)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has that pid: maybe the run itself
    return False


async def _connect_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise PostgresUnreachable(f"PostgreSQL is unreachable at {ADMIN_DSN}: {exc}") from exc


async def create_database(name: str) -> None:
    """Create database `name` (one of this run's names); raises PostgresUnreachable."""
    if not name.startswith(RUN_NAME):
        raise AssertionError(f"{name!r} is not named after this run ({RUN_NAME})")
    conn = await _connect_admin()
    try:
        # Fails if the name exists: it is not ours then, and is left alone.
        await conn.execute(f'CREATE DATABASE "{name}"')
        _created_databases.add(name)
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{_comment()}'")
    finally:
        await conn.close()


async def drop_database(name: str) -> None:
    """Drop database `name` if this run created it (and only then), closing this run's
    connections to it."""
    if name not in _created_databases:
        return
    conn = await _connect_admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _created_databases.discard(name)
    finally:
        await conn.close()


async def create_role(name: str) -> None:
    """Create login role `name` (one of this run's names; roles are cluster-wide)."""
    if not name.startswith(RUN_NAME):
        raise AssertionError(f"{name!r} is not named after this run ({RUN_NAME})")
    conn = await _connect_admin()
    try:
        await conn.execute(f'CREATE ROLE "{name}" LOGIN')
        _created_roles.add(name)
        await conn.execute(f"COMMENT ON ROLE \"{name}\" IS '{_comment()}'")
    finally:
        await conn.close()


async def drop_role(name: str, databases: list[str]) -> None:
    """Drop role `name` if this run created it (and only then), with what it owns and what
    was granted to it in `databases` (the only ones it was given anything in)."""
    if name not in _created_roles:
        return
    for database in databases:
        if database not in _created_databases:
            continue  # already dropped, and its grants and objects with it
        conn = await asyncpg.connect(dsn(database), timeout=5)
        try:
            await conn.execute(f'DROP OWNED BY "{name}"')
        finally:
            await conn.close()
    conn = await _connect_admin()
    try:
        await conn.execute(f'DROP OWNED BY "{name}"')  # in the admin database, if anything
        await conn.execute(f'DROP ROLE IF EXISTS "{name}"')
        _created_roles.discard(name)
    finally:
        await conn.close()


async def leftovers() -> list[str]:
    """Databases and roles of test runs (any run with this prefix, not this one) that were made
    on this host by a process that has ended and that nobody is connected to: left by a run that
    was killed. Listed, never dropped."""
    conn = await _connect_admin()
    try:
        rows = await conn.fetch(
            "SELECT 'database' AS kind, datname AS name,"
            " shobj_description(oid, 'pg_database') AS about"
            " FROM pg_database d WHERE NOT EXISTS"
            " (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
            " UNION ALL"
            " SELECT 'role', rolname, shobj_description(oid, 'pg_authid')"
            " FROM pg_roles r WHERE NOT EXISTS"
            " (SELECT 1 FROM pg_stat_activity a WHERE a.usename = r.rolname)"
        )
    finally:
        await conn.close()
    return sorted(
        f"{row['kind']} {row['name']} ({row['about']})"
        for row in rows
        if _ANY_RUN.fullmatch(row["name"])
        and not row["name"].startswith(RUN_NAME)
        and _left_by_a_dead_local_process(row["about"])
    )
