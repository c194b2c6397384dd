"""Creating tables beside the events: once, safely, whoever starts first.

Two processes starting on a new store at once (a server and a projection worker, two
servers) may both try to create the same tables.  ``create_tables`` runs ``create_all``
in one transaction under a PostgreSQL advisory lock named after the tables' owner, and on
SQLite (where the file's write lock serialises them) retries a creation that lost the race.
``schema_lock`` is the same lock for callers that create tables their own way (the read
models' ``ensure_schema``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from sqlalchemy import Connection, Engine, MetaData, func, select
from sqlalchemy.exc import DBAPIError


def schema_lock(conn: Connection, owner: str) -> None:
    """Hold, for this transaction, the PostgreSQL advisory lock of ``owner``'s tables."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(zlib.crc32(owner.encode()))))


def create_tables(engine: Engine, metadata: MetaData, *, owner: str,
                  then: Callable[[Connection], None] | None = None, attempts: int = 3) -> None:
    """Create ``metadata``'s missing tables (and run ``then`` in the same transaction)."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                schema_lock(conn, owner)
                metadata.create_all(conn)
                if then is not None:
                    then(conn)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
