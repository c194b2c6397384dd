"""The store fixture: every test that asks for ``app`` runs on SQLite and on PostgreSQL.

- sqlite: a fresh database file in the test's ``tmp_path``.
- postgres: the server named by ``ZHUISU_TEST_POSTGRES_URL``
  (e.g. ``postgresql://postgres@127.0.0.1:5432/test``); each app gets its own fresh schema
  ``t_<uuid hex>``, dropped (CASCADE) after the test once the app's connections are closed.

Without ``ZHUISU_TEST_POSTGRES_URL`` the postgres tests are skipped on a developer's machine
and fail in CI (env ``CI`` true).  A server that is named but cannot be reached is a
failure, never a skip.  Every app has its own ID-pepper file in ``tmp_path``.

``store.app_on(url)`` opens a second, independent application on the same database (no
shared cache); ``store.fresh_app()`` gives an app on a fresh database for one block (one
hypothesis example).  Each app records its ``database_url`` and ``pepper_file``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog

from store.settings import Settings, build_app
from domain.application import Zhuisu
from factories import World, a_county_world

POSTGRES_URL_ENV = "ZHUISU_TEST_POSTGRES_URL"
STORES = ["sqlite", "postgres"]

# Files a server makes on first use (the log key) go to a scratch folder, never the repo.
os.environ.setdefault("ZHUISU_LOG_KEY_FILE", os.path.join(tempfile.mkdtemp(), "log-key"))


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _server_url(url: str) -> str:
    """The URL without its query (a ``?schema=`` of the variable itself is ignored)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class PostgresServer:
    """The test server, with one admin connection that creates and drops test schemas."""

    def __init__(self, url: str):
        import psycopg

        self.url = _server_url(url)
        try:
            self.admin = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            self.admin.execute("SELECT 1")
        except psycopg.Error as exc:
            pytest.fail(f"{POSTGRES_URL_ENV}={url} cannot be reached: {exc}", pytrace=False)
        # A connection someone left open in a transaction must fail a test, not hang it.
        self.admin.execute("SET lock_timeout = '10s'")

    def create_schema(self) -> str:
        schema = f"t_{uuid.uuid4().hex}"
        self.admin.execute(f'CREATE SCHEMA "{schema}"')
        return schema

    def drop_schema(self, schema: str) -> None:
        self.admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def close(self) -> None:
        self.admin.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        if _true(os.environ.get("CI")):
            pytest.fail(f"{POSTGRES_URL_ENV} is not set: in CI the suite must also run on "
                        "PostgreSQL (e.g. postgresql://postgres@127.0.0.1:5432/test)",
                        pytrace=False)
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV}")
    server = PostgresServer(url)
    yield server
    server.close()


class Store:
    """Makes apps on one kind of store, each on a fresh database, and cleans them up."""

    def __init__(self, kind: str, tmp_path: Path, server: PostgresServer | None = None):
        self.kind = kind
        self.tmp_path = tmp_path
        self.server = server
        self._apps: list[Zhuisu] = []
        self._schemas: list[str] = []
        self._peppers: dict[str, Path] = {}  # database URL → the ID-pepper file it was made with

    def new_database_url(self) -> str:
        if self.server is None:
            return f"sqlite:///{self.tmp_path / f'zhuisu-{uuid.uuid4().hex[:8]}.db'}"
        schema = self.server.create_schema()
        self._schemas.append(schema)
        return f"{self.server.url}?schema={schema}"

    def app_on(self, database_url: str, pepper_file: Path | None = None) -> Zhuisu:
        """Another, independent application instance on an existing database (by default
        with the ID-pepper file the database was made with)."""
        pepper = (pepper_file or self._peppers.get(database_url)
                  or self.tmp_path / f"id-pepper-{uuid.uuid4().hex[:8]}")
        self._peppers.setdefault(database_url, pepper)
        app: Any = build_app(Settings(database_url=database_url, id_pepper_file=pepper))
        app.database_url = database_url
        app.pepper_file = pepper
        self._apps.append(app)
        return app

    def new_app(self) -> Zhuisu:
        return self.app_on(self.new_database_url())

    @contextmanager
    def fresh_app(self) -> Iterator[Zhuisu]:
        """An app on a fresh database that is closed and dropped on leaving the block."""
        mark_apps, mark_schemas = len(self._apps), len(self._schemas)
        try:
            yield self.new_app()
        finally:
            self._cleanup(mark_apps, mark_schemas)

    def _cleanup(self, mark_apps: int = 0, mark_schemas: int = 0) -> None:
        for app in self._apps[mark_apps:]:
            app.close()
        del self._apps[mark_apps:]
        for schema in self._schemas[mark_schemas:]:
            self.server.drop_schema(schema)
        del self._schemas[mark_schemas:]

    def close(self) -> None:
        self._cleanup()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    s = Store(request.param, tmp_path, server)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def app(store: Store) -> Zhuisu:
    return store.new_app()


@pytest.fixture
def world(app: Zhuisu) -> World:
    return a_county_world(app)


@pytest.fixture
def close_read_models() -> Iterator[None]:
    """After the test: dispose of the read models' engines and the log readers opened for
    it (modules that query projections: ``pytestmark = usefixtures("close_read_models")``)."""
    yield
    from projections import runner
    from store.engines import dispose

    dispose()
    runner.close_sources()


# the HTTP API (tests/api_support.py) -------------------------------------------------
@pytest.fixture
def api(app: Zhuisu) -> Iterator[Any]:
    """The HTTP API on ``app`` (so on each store); ``api.client`` sends an all-regions
    administrator's token, ``api.as_(role, region)`` is a caller with a token of its own."""
    from api_support import api_on

    with api_on(app) as a:
        yield a


@pytest.fixture
def admin_token(api: Any) -> str:
    """An administrator's bearer token for ``api`` (every region)."""
    return api.admin_token


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures logging for the process; leave the next test as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()
