"""tickets: FTS5 trigram index for the q= search on SQLite

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:00:00

SQLite's counterpart of 0002. `GET /tickets?q=` matches `lower(title) LIKE '%q%' OR
lower(description) LIKE '%q%'`, which reads every ticket for a rare word (75 ms at 100,000
tickets). `tickets_fts` is an external-content FTS5 table over tickets.title and
tickets.description, keyed by the tickets rowid, with the trigram tokenizer (case-insensitive
substring matching); the search uses it only to narrow the candidates and keeps the LIKE, so
results do not change. Triggers keep it in step with every INSERT, DELETE and change of the title
or description.

The trigram tokenizer needs SQLite >= 3.34 built with FTS5; without it the migration does
nothing and the search keeps scanning. PostgreSQL: nothing to do (see 0002).

Keyed by the implicit rowid: a later migration that rebuilds `tickets` (batch "move and copy")
drops these triggers with the old table and may renumber rowids; it must recreate the triggers and
run `INSERT INTO tickets_fts(tickets_fts) VALUES('rebuild')`.
"""

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_MIN_VERSION = (3, 34, 0)


def _fts5_trigram_available(bind: sa.Connection) -> bool:
    if sqlite3.sqlite_version_info < TRIGRAM_MIN_VERSION:
        return False
    # The library's version says nothing about whether it was built with FTS5: try it, in a
    # savepoint so a failure leaves the migration's transaction usable.
    try:
        with bind.begin_nested():
            bind.exec_driver_sql(
                "CREATE VIRTUAL TABLE temp.ticketing_fts5_probe USING fts5(x, tokenize='trigram')"
            )
            bind.exec_driver_sql("DROP TABLE temp.ticketing_fts5_probe")
    except sa.exc.OperationalError:
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not _fts5_trigram_available(bind):
        return
    op.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS tickets_fts USING fts5("
        "title, description, content='tickets', content_rowid='rowid', "
        "tokenize='trigram case_sensitive 0')"
    )
    # Index the tickets that already exist (reads them through the content table).
    op.execute("INSERT INTO tickets_fts(tickets_fts) VALUES('rebuild')")
    op.execute(
        "CREATE TRIGGER IF NOT EXISTS tickets_fts_ai AFTER INSERT ON tickets BEGIN "
        "INSERT INTO tickets_fts(rowid, title, description) "
        "VALUES (new.rowid, new.title, new.description); "
        "END"
    )
    op.execute(
        "CREATE TRIGGER IF NOT EXISTS tickets_fts_ad AFTER DELETE ON tickets BEGIN "
        "INSERT INTO tickets_fts(tickets_fts, rowid, title, description) "
        "VALUES ('delete', old.rowid, old.title, old.description); "
        "END"
    )
    # Only a change of the indexed text re-indexes: status, assignment, triage do not.
    op.execute(
        "CREATE TRIGGER IF NOT EXISTS tickets_fts_au AFTER UPDATE OF title, description "
        "ON tickets BEGIN "
        "INSERT INTO tickets_fts(tickets_fts, rowid, title, description) "
        "VALUES ('delete', old.rowid, old.title, old.description); "
        "INSERT INTO tickets_fts(rowid, title, description) "
        "VALUES (new.rowid, new.title, new.description); "
        "END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS tickets_fts_au")
    op.execute("DROP TRIGGER IF EXISTS tickets_fts_ad")
    op.execute("DROP TRIGGER IF EXISTS tickets_fts_ai")
    op.execute("DROP TABLE IF EXISTS tickets_fts")
