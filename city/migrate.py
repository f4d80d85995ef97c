"""Schema migrations of the city database: plain versioned SQL files (city/migrations/NNNN_name.sql), applied in
order, each in its own transaction together with its row in `schema_versions`. Two collectors starting at once
take turns on an advisory lock, so a migration is never applied twice."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

MIGRATIONS = resources.files("city") / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x7675_6F72  # "vuor": the advisory lock that serialises migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in MIGRATIONS.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


def migrate(conn: Any) -> list[Migration]:
    """Apply what is not applied yet; returns what was applied. `conn` is a psycopg connection (autocommit off)."""
    applied: list[Migration] = []
    with conn.transaction():  # under the lock too: CREATE TABLE IF NOT EXISTS races with itself
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
    for migration in migrations():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            done = conn.execute("SELECT 1 FROM schema_versions WHERE version = %s", (migration.version,)).fetchone()
            if done:
                continue
            conn.execute(migration.sql)
            conn.execute("INSERT INTO schema_versions (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration)
    return applied
