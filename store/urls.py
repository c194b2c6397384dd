"""The one database URL (``ZHUISU_DATABASE_URL``) and what each library needs of it.

- ``sqlite:///path/to/zhuisu.db`` (the embedded default): events, audit tables, read models
  and the API's tables in one SQLite file;
- ``postgresql://user[:password]@host[:port]/dbname[?schema=name]``: the production and
  scale-out store, every table in the URL's schema (default ``public``).

``sqlalchemy_url`` gives SQLAlchemy's URL and the schema; ``eventsourcing_env`` (in
``store.settings``) the event store library's settings; ``database_url_of`` the inverse,
the URL an application was built on.  Whoever opens a SQLite store first makes its file
with mode 0600 (``private_sqlite_file``).  Every layer goes through these: nothing else parses
a database URL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from domain.errors import InvalidInput

FIELD = "ZHUISU_DATABASE_URL"
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def sqlite_path(database_url: str) -> str:
    """The file of a ``sqlite:///`` URL ('' or ':memory:' for an in-memory database)."""
    parts = urlsplit(database_url)
    return unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)


def create_private_file(path: Path) -> None:
    """Make ``path`` (and a missing folder, 0700) an empty file of mode 0600 unless it
    exists.  A SQLite store's file is made this way before SQLite opens it: SQLite gives
    its -wal, -shm and -journal files the database file's mode, so they are 0600 too."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def private_sqlite_file(database_url: str) -> None:
    """For a ``sqlite:///`` file URL: its file, made private if it does not exist yet."""
    if urlsplit(database_url).scheme == "sqlite":
        path = sqlite_path(database_url)
        if path not in ("", ":memory:"):
            create_private_file(Path(path))


def postgres_schema(database_url: str) -> str | None:
    """The ``?schema=`` of a PostgreSQL URL, checked to be a plain identifier."""
    schema = parse_qs(urlsplit(database_url).query).get("schema", [None])[0]
    if schema is not None and not _SCHEMA.fullmatch(schema):
        raise InvalidInput(f"schema: expected letters, digits and _, got {schema!r}", field=FIELD)
    return schema


def sqlalchemy_url(database_url: str, *, file_only: bool = False) -> tuple[str, str | None]:
    """(SQLAlchemy URL, PostgreSQL schema or None) for the store's database URL.

    ``file_only``: refuse an in-memory SQLite database (the log and the read models must
    share a file with the events).
    """
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        path = sqlite_path(database_url)
        if path in ("", ":memory:"):
            if file_only:
                raise InvalidInput("needs a database file shared with the events: "
                                   "sqlite:///path/to/file.db", field=FIELD)
            return "sqlite://", None
        return f"sqlite:///{path}", None
    if parts.scheme in ("postgresql", "postgres"):
        schema = postgres_schema(database_url)
        return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, "", "")), schema
    raise InvalidInput("must start with sqlite:/// or postgresql://", field=FIELD)


def database_url_of(app: Any) -> str:
    """The database URL of a ``Zhuisu`` application (its ``database_url``, else its settings)."""
    url = getattr(app, "database_url", None)
    if url:
        return str(url)
    env = app.env
    module = env.get("PERSISTENCE_MODULE", "")
    if module.endswith("sqlite"):
        return f"sqlite:///{env['SQLITE_DBNAME']}"
    if module.endswith("postgres"):
        user = quote(env.get("POSTGRES_USER", "postgres"), safe="")
        password = env.get("POSTGRES_PASSWORD", "")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        url = (f"postgresql://{auth}@{env.get('POSTGRES_HOST', '127.0.0.1')}:"
               f"{env.get('POSTGRES_PORT', '5432')}/{env.get('POSTGRES_DBNAME', 'postgres')}")
        schema = env.get("POSTGRES_SCHEMA")
        return f"{url}?schema={schema}" if schema else url
    raise InvalidInput(f"no database URL for the persistence module {module!r}", field=FIELD)
