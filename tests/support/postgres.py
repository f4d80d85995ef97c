"""The machine's real PostgreSQL for the city tests: a fresh database per test, all of a run's dropped after.

The server is the one at 127.0.0.1:5432 (user postgres, trust auth; bin/test installs and starts it where it is
missing), or $VUORO_TEST_PG (a libpq URL of a role that may CREATE DATABASE). Each database is named after the
run and the test's number, so two runs side by side never meet, and a run that was killed leaves databases that
the next run of the same name would not reuse (the run's id is random).

Tests take `city_dsn` (a new, empty database for this test) after importing the fixtures:
    from tests.support.postgres import city_dsn, postgres  # noqa: F401
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg  # the city extra, which bin/test installs (`all`): a missing one fails, never skips
import pytest

ADMIN_DSN = os.environ.get("VUORO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CONNECT_TIMEOUT_S = 10


def _with_db(dsn: str, name: str) -> str:
    """The same server and login, another database."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(dsn)
    info["dbname"] = name
    return make_conninfo("", **info)


@dataclass
class Postgres:
    """The run's handle on the server: makes and drops its databases."""

    admin_dsn: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    made: list[str] = field(default_factory=list)

    def _admin(self) -> Any:
        return psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def create(self) -> str:
        name = f"vuoro_test_{self.run_id}_{len(self.made) + 1}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return _with_db(self.admin_dsn, name)

    def drop(self, dsn: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        name = str(conninfo_to_dict(dsn)["dbname"])
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.made:
            self.made.remove(name)

    def drop_all(self) -> None:
        for name in list(self.made):
            self.drop(_with_db(self.admin_dsn, name))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres(ADMIN_DSN)
    try:
        server._admin().close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} (bin/test installs and starts it): {exc}")
    yield server
    server.drop_all()


@pytest.fixture
def city_dsn(postgres: Postgres) -> Iterator[str]:
    """A fresh, empty database for this test; dropped after it (connections still open are cut)."""
    dsn = postgres.create()
    yield dsn
    postgres.drop(dsn)


@pytest.fixture
def fresh_database(postgres: Postgres) -> Iterator[Callable[[], str]]:
    """More than one database in a test (a bench, two cities)."""
    made: list[str] = []

    def make() -> str:
        made.append(postgres.create())
        return made[-1]

    yield make
    for dsn in made:
        postgres.drop(dsn)
