"""Bulk append of already-verified stored events (restores, imports, replicas).

The command path checks every rule and signature one command at a time; when events
have been verified elsewhere (a log exported from another zhuisu and checked against its
signed checkpoints, say), they can be appended in bulk: SQLite ``executemany`` in one
transaction, PostgreSQL ``COPY`` under the same table lock and NOTIFY the library uses, so
notification order, uniqueness of (originator, version) and LISTEN followers behave as for
ordinary saves.  A duplicate (originator, version) aborts the whole append.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.application import Zhuisu


def append_verified(app: Zhuisu, stored_events: Sequence[StoredEvent]) -> int:
    """Append ``stored_events`` in one transaction; returns how many were appended."""
    if not stored_events:
        return 0
    recorder = app.recorder
    if type(recorder).__module__ == "eventsourcing.postgres":
        return _copy_postgres(recorder, stored_events)
    rows = [(e.originator_id.hex if hasattr(e.originator_id, "hex") else e.originator_id,
             e.originator_version, e.topic, e.state) for e in stored_events]
    try:
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.executemany(recorder.insert_events_statement, rows)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(exc) from exc
    return len(rows)


def _copy_postgres(recorder: object, stored_events: Sequence[StoredEvent]) -> int:
    import psycopg
    from psycopg.sql import SQL, Identifier

    datastore = recorder.datastore  # type: ignore[attr-defined]
    table = Identifier(datastore.schema), Identifier(recorder.events_table_name)  # type: ignore[attr-defined]
    copy_sql = SQL("COPY {}.{} (originator_id, originator_version, topic, state) FROM STDIN")
    try:
        with datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for statement in recorder.lock_table_statements:  # type: ignore[attr-defined]
                cursor.execute(statement)
            with cursor.copy(copy_sql.format(*table)) as copy:
                for e in stored_events:
                    copy.write_row((e.originator_id, e.originator_version, e.topic, e.state))
            cursor.execute(SQL("NOTIFY {}").format(
                Identifier(recorder.channel_name)))  # type: ignore[attr-defined]
    except psycopg.errors.UniqueViolation as exc:
        raise IntegrityError(exc) from exc
    return len(stored_events)
