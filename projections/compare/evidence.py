"""The registers' kept rows (比对数据): evidence beside the log, checked against it.

``register_rows`` holds one row per kept row of an imported snapshot, keyed by snapshot id
and row number (the file's row number), with the ID number's keyed hash (``id_hash``,
never the number) and, as JSON, only the fields a comparison model reads
(``domain.registers.ROW_FIELDS``).  The rows are written before the snapshot's event
(``write_rows``), so the comparison projection finds them when it takes the event; rows
of a snapshot whose event was never stored are orphans no query reaches, and are
replaced if the same file is imported again.  A rebuild of the projections leaves this
table alone: the rows are the evidence the matches point at.

``verify_snapshot`` recomputes the Merkle root of a snapshot's stored rows
(``domain.registers.rows_root``) so that a row changed, added or deleted in the table is
found against the event, which the tamper-evident log covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    delete,
    select,
)

from domain.registers import rows_root
from store.engines import writer

metadata = MetaData()

register_rows = Table(
    "register_rows", metadata,
    Column("snapshot_id", String(36), primary_key=True),
    Column("row_no", BigInteger, primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("id_hash", String(64), nullable=False),
    Column("fields", JSON, nullable=False),
)
Index("register_rows_id_hash", register_rows.c.id_hash, register_rows.c.snapshot_id)

WRITE_CHUNK = 5000
_ensured: set[int] = set()


def ensure_evidence(engine: Engine) -> None:
    if id(engine) in _ensured:
        return
    with writer(engine).begin() as conn:
        metadata.create_all(conn, checkfirst=True)
    _ensured.add(id(engine))


def leaf_row(row_no: int, id_hash: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A kept row as its Merkle leaf covers it."""
    return {"row_no": row_no, "id_hash": id_hash, **fields}


def write_rows(engine: Engine, snapshot_id: str, kind: str,
               rows: Iterable[tuple[int, str, Mapping[str, Any]]]) -> int:
    """Write a snapshot's kept rows ``(row_no, id_hash, fields)`` (replacing any orphans of
    an earlier attempt); returns how many.  PostgreSQL takes them by ``COPY``, SQLite by
``executemany`` in chunks."""
    import json

    ensure_evidence(engine)
    n = 0
    dialect = engine.dialect.name
    mark = "?" if dialect == "sqlite" else "%s"
    sql = (f'INSERT INTO "register_rows" ("snapshot_id", "row_no", "kind", "id_hash", '
           f'"fields") VALUES ({", ".join([mark] * 5)})')
    with writer(engine).begin() as conn:
        conn.execute(delete(register_rows).where(register_rows.c.snapshot_id == snapshot_id))
        if dialect == "postgresql":  # COPY: a million rows in seconds
            cursor = conn.connection.driver_connection.cursor()
            with cursor.copy('COPY "register_rows" ("snapshot_id", "row_no", "kind", '
                             '"id_hash", "fields") FROM STDIN') as copy:
                for row_no, id_hash, fields in rows:
                    copy.write_row((snapshot_id, row_no, kind, id_hash,
                                    json.dumps(dict(fields), ensure_ascii=False,
                                               sort_keys=True)))
                    n += 1
            cursor.close()
            return n
        cursor = conn.connection.driver_connection.cursor()
        try:
            chunk: list[tuple] = []
            for row_no, id_hash, fields in rows:
                chunk.append((snapshot_id, row_no, kind, id_hash,
                              json.dumps(dict(fields), ensure_ascii=False, sort_keys=True)))
                if len(chunk) >= WRITE_CHUNK:
                    cursor.executemany(sql, chunk)
                    n += len(chunk)
                    chunk = []
            if chunk:
                cursor.executemany(sql, chunk)
                n += len(chunk)
        finally:
            cursor.close()
    return n


def rows_of(conn: Connection, snapshot_id: str) -> Iterator[dict[str, Any]]:
    """A snapshot's rows in row-number order: ``{row_no, id_hash, fields}``."""
    r = register_rows.c
    for row in conn.execute(select(r.row_no, r.id_hash, r.fields)
                            .where(r.snapshot_id == snapshot_id)
                            .order_by(r.row_no)).mappings():
        yield dict(row)


def verify_snapshot(engine: Engine, snapshot_id: str, expected_root: str) -> dict[str, Any]:
    """The stored rows of a snapshot against its event's ``rows_root``."""
    ensure_evidence(engine)
    with engine.connect() as conn:
        rows = [leaf_row(r["row_no"], r["id_hash"], r["fields"]) for r in rows_of(conn, snapshot_id)]
    root = rows_root(rows)
    return {"snapshot_id": snapshot_id, "rows": len(rows), "rows_root": root,
            "expected": expected_root, "ok": root == expected_root}
