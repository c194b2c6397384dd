"""Where the log lives: the audit tables beside the events, and raw reads of the events table.

One database URL (the application's ``ZHUISU_DATABASE_URL``) names both the event store and
the audit tables, so they share a database and, on PostgreSQL, the ``?schema=``:

- ``sqlite:///path``      → SQLAlchemy ``sqlite:///path``, events table ``stored_events``
  (notification id = ``rowid``);
- ``postgresql://…``      → SQLAlchemy ``postgresql+psycopg://…``, events table
  ``zhuisu_events`` (column ``notification_id``) in the URL's schema (default ``public``).

Audit tables (created on first use, SQLAlchemy Core):

- ``merkle_leaves(leaf_index, position, leaf_hash, fields)``: leaf i is the record at
  notification id ``position``; ``fields`` are its ``records.field_digests`` (diagnostic
  only: they name the field a change touched; the leaf hash is what is checked);
- ``merkle_nodes(level, idx, hash)``: every completed perfect subtree of level ≥ 1
  (level 0 nodes are ``merkle_leaves.leaf_hash``);
- ``merkle_state(id=1, size, last_position, frontier)``: the tracking position and the
  compact range (``merkle.CompactRange``) — the whole incremental state;
- ``log_keys``, ``log_checkpoints``, ``log_checkpoint_leaves``: see ``audit.logkey`` and
  ``audit.log``;
- ``log_signed_steps(digest, position)``: the content digest of every signed step the
  tree took in, so that a replayed copy of one is refused (``audit.signatures``).

The events are read with our own SQL on the DB-API connection rather than through the
library's decoded notifications: the log hashes the stored bytes, and this is the
verifier's hot loop.  Each row comes back as a ``records.Record`` tuple ``(position,
originator_id, version, topic, state)`` with the id and topic already bytes; values a
tampered row may hold (NULL, text for a number) are normalised by ``normalise_row`` so
that they hash, and fail, instead of crashing.  On PostgreSQL the verifier's fast path
reads each record as its whole leaf input built by the server (``EventRows.leaf_inputs``)
and only hashes it; anything it does not accept goes through the rows above.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    insert,
    select,
)

from audit.records import FORMAT, NULL_VERSION, leaf_hashes
from domain.application import Zhuisu
from domain.errors import InvalidInput
from store.engines import new_engine
from store.schema import create_tables
from store.urls import is_postgres, postgres_schema

DEFAULT_KEY_FILE = Path("var/log-key")
DEFAULT_ORIGIN = "zhuisu.example/log"

_Id = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite

metadata = MetaData()
merkle_leaves = Table(
    "merkle_leaves", metadata,
    Column("leaf_index", _Id, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("fields", LargeBinary, nullable=False),
)
merkle_nodes = Table(
    "merkle_nodes", metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)
merkle_state = Table(
    "merkle_state", metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)
log_keys = Table(
    "log_keys", metadata,
    Column("key_id", String(8), primary_key=True),  # hex of the signed-note key hash
    Column("vkey", Text, nullable=False),
    Column("valid_from", String(32), nullable=False),
    Column("valid_until", String(32)),
    Column("introduced_by", BigInteger),  # the rotation checkpoint; NULL for the first key
)
log_checkpoints = Table(
    "log_checkpoints", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("origin", Text, nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("time", String(32), nullable=False),
    Column("note", Text, nullable=False),
)
log_signed_steps = Table(  # audit.signatures: each signed step the tree took in, once
    "log_signed_steps", metadata,
    Column("digest", LargeBinary, primary_key=True),  # domain.signing.content_digest
    Column("position", BigInteger, nullable=False),
)
log_checkpoint_leaves = Table(
    "log_checkpoint_leaves", metadata,
    Column("first_leaf", _Id, primary_key=True, autoincrement=False),
    Column("leaf_count", Integer, nullable=False),
    Column("checkpoint_id", BigInteger, nullable=False),
    Column("hashes", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class AuditConfig:
    """The database URL, the log key file and the log's origin line."""

    database_url: str
    key_file: Path = DEFAULT_KEY_FILE
    origin: str = DEFAULT_ORIGIN

    @classmethod
    def of(cls, source: Any) -> AuditConfig:
        """From a URL string, an ``AuditConfig``, or any settings object with ``database_url``.

        The key file is ``settings.log_key_file`` if present, else ``ZHUISU_LOG_KEY_FILE``,
        else ``var/log-key``; the origin likewise ``log_origin`` / ``ZHUISU_LOG_ORIGIN``.
        """
        if isinstance(source, AuditConfig):
            return source
        url = source if isinstance(source, str) else getattr(source, "database_url", None)
        if not isinstance(url, str):
            raise InvalidInput("expected a database URL or settings with database_url",
                               field="database_url")
        key_file = (getattr(source, "log_key_file", None)
                    or os.environ.get("ZHUISU_LOG_KEY_FILE") or DEFAULT_KEY_FILE)
        origin = (getattr(source, "log_origin", None)
                  or os.environ.get("ZHUISU_LOG_ORIGIN") or DEFAULT_ORIGIN)
        return cls(url, Path(key_file), origin)


def raw_rows(conn: Connection, dialect: str, sql: str, params: Sequence) -> list[tuple]:
    """Run SQL on the DB-API connection under ``conn`` (same transaction); all rows.

    PostgreSQL rows come in binary format (bytea as bytes, no hex decoding).
    """
    raw = conn.connection.driver_connection
    if dialect == "sqlite":
        return raw.execute(sql, params).fetchall()
    with raw.cursor(binary=True) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


class EventRows:
    """Raw reads of the application's events table, in notification order.

    Each row is ``(position, originator_id, version, topic, state)`` with the id and the
    topic as bytes (``records.Record``), read with ``CAST`` / ``convert_to`` so that no
    Python conversion is needed on the common path.
    """

    def __init__(self, dialect: str, table: str, uuid_ids: bool = True):
        self.dialect = dialect
        if dialect == "sqlite":
            pos, ph = "rowid", "?"
            cols = ("CAST(e.originator_id AS BLOB), e.originator_version, "
                    "CAST(e.topic AS BLOB), CAST(e.state AS BLOB)")
        else:
            pos, ph = "notification_id", "%s"
            oid = ("replace(e.originator_id::text, '-', '')" if uuid_ids
                   else "e.originator_id::text")
            cols = (f"convert_to({oid}, 'UTF8'), e.originator_version, "
                    f"convert_to(e.topic, 'UTF8'), e.state")
        self.table, self.pos, self.ph, self.uuid_ids = table, pos, ph, uuid_ids
        self._between = (f"SELECT e.{pos}, {cols} FROM {table} e WHERE e.{pos} > {ph} "
                         f"AND e.{pos} <= {ph} ORDER BY e.{pos} LIMIT {ph}")
        self._count = f"SELECT COUNT(*) FROM {table} WHERE {pos} > {ph} AND {pos} <= {ph}"
        self._position_of = (f"SELECT {pos} FROM {table} "
                             f"WHERE originator_id = {ph} AND originator_version = {ph}")
        self._cols = cols
        if dialect != "sqlite":
            # records.encode_record after the leaf prefix 0x00, built by the server:
            # int8send / int4send are big-endian, the lengths are byte lengths, and a
            # uuid's 32 hex digits are 32 bytes.
            oid = ("convert_to(encode(uuid_send(e.originator_id), 'hex'), 'UTF8')" if uuid_ids
                   else "convert_to(e.originator_id::text, 'UTF8')")
            oid_length = "32" if uuid_ids else f"octet_length({oid})"
            topic = "convert_to(e.topic, 'UTF8')"
            self._leaf_inputs = (
                f"SELECT e.{pos}, '\\x00{FORMAT:02x}'::bytea || int8send(e.{pos}) || "
                f"int8send(e.originator_version::int8) || int4send({oid_length}) || "
                f"int4send(octet_length({topic})) || int4send(octet_length(e.state)) || "
                f"{oid} || {topic} || e.state FROM {table} e WHERE e.{pos} > %s "
                f"ORDER BY e.{pos} LIMIT %s")

    def between(self, conn: Connection, after: int, upto: int = 2**63 - 1,
                limit: int = 2**62) -> list[tuple]:
        """Rows with after < position <= upto, at most ``limit``."""
        return raw_rows(conn, self.dialect, self._between, (after, upto, limit))

    def leaf_inputs(self, conn: Connection, after: int, limit: int) -> list[tuple]:
        """PostgreSQL: (position, 0x00 ‖ ``records.encode_record(row)``) of the first
        ``limit`` rows after position ``after``, the encoding built by the server so that
        the verifier's hot loop only hashes (``tests/test_audit_scan.py`` holds it to
        ``encode_record`` byte for byte).  A NULL field makes the whole input NULL."""
        return raw_rows(conn, self.dialect, self._leaf_inputs, (after, limit))

    def by_leaf(self, conn: Connection, leaves_table: str, start: int, stop: int) -> list[tuple]:
        """For leaves [start, stop) in leaf order: the record at each leaf's stored position
        (all but the position NULL if there is none), then the stored leaf hash."""
        sql = (f"SELECT l.position, {self._cols}, l.leaf_hash FROM {leaves_table} l "
               f"LEFT JOIN {self.table} e ON e.{self.pos} = l.position "
               f"WHERE l.leaf_index >= {self.ph} AND l.leaf_index < {self.ph} "
               f"ORDER BY l.leaf_index")
        return raw_rows(conn, self.dialect, sql, (start, stop))

    def at_leaf_position(self, conn: Connection, leaves_table: str,
                         position: int) -> tuple | None:
        """(leaf index, record...) of the event at ``position`` if both exist."""
        sql = (f"SELECT l.leaf_index, e.{self.pos}, {self._cols} FROM {leaves_table} l "
               f"JOIN {self.table} e ON e.{self.pos} = l.position WHERE l.position = {self.ph}")
        rows = raw_rows(conn, self.dialect, sql, (position,))
        return rows[0] if rows else None

    def of_aggregates(self, conn: Connection, ids: Sequence[uuid.UUID], upto: int,
                      after: int = -(2**63)) -> list[tuple]:
        """Rows of these aggregates with after < position <= upto, in position order."""
        if not ids:
            return []
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(ids))
            sql = (f"SELECT e.rowid, {self._cols} FROM {self.table} e WHERE e.originator_id "
                   f"IN ({marks}) AND e.rowid > ? AND e.rowid <= ? ORDER BY e.rowid")
            return raw_rows(conn, self.dialect, sql, [i.hex for i in ids] + [after, upto])
        sql = (f"SELECT e.{self.pos}, {self._cols} FROM {self.table} e WHERE e.originator_id "
               f"= ANY(%s) AND e.{self.pos} > %s AND e.{self.pos} <= %s ORDER BY e.{self.pos}")
        keys: list[Any] = list(ids) if self.uuid_ids else [str(i) for i in ids]
        return raw_rows(conn, self.dialect, sql, (keys, after, upto))

    def count(self, conn: Connection, after: int, upto: int = 2**63 - 1) -> int:
        return raw_rows(conn, self.dialect, self._count, (after, upto))[0][0]

    def position_of(self, conn: Connection, originator_id: uuid.UUID, version: int) -> int | None:
        oid: Any = originator_id.hex if self.dialect == "sqlite" else originator_id
        rows = raw_rows(conn, self.dialect, self._position_of, (oid, version))
        return rows[0][0] if rows else None


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return b"" if value is None else bytes(value)


def normalise_row(row: Sequence) -> tuple[int, bytes, int, bytes, bytes]:
    """A row as the record encoding needs it, whatever types a tampered row holds."""
    position, oid, version, topic, state = row
    if not isinstance(version, int):
        try:
            version = int(version)
        except (TypeError, ValueError):
            version = NULL_VERSION
    return int(position), _as_bytes(oid), version, _as_bytes(topic), _as_bytes(state)


def hash_rows(rows: list[tuple]) -> tuple[list[tuple], list[bytes]]:
    """(rows, their leaf hashes); rows whose types do not fit the encoding are normalised."""
    try:
        return rows, leaf_hashes(rows)
    except (TypeError, ValueError, AttributeError, struct.error):
        rows = [normalise_row(r) for r in rows]
        return rows, leaf_hashes(rows)


@contextmanager
def opened(source: Any) -> Iterator[AuditStore]:
    """``source`` as an open store: an ``AuditStore`` is used as is (and left open), anything
    else (settings, URL, ``AuditConfig``) is opened for the block and closed after."""
    store = AuditStore.of(source)
    try:
        yield store
    finally:
        if store is not source:
            store.close()


class AuditStore:
    """An engine on the application's database, the audit tables, and the events reader."""

    def __init__(self, config: AuditConfig, *, create: bool = True):
        self.config = config
        schema = postgres_schema(config.database_url) if is_postgres(config.database_url) else None
        self.schema = schema
        engine = new_engine(config.database_url, "audit")
        if engine.dialect.name == "sqlite":
            table = '"stored_events"'
        else:
            if schema:
                engine = engine.execution_options(schema_translate_map={None: schema})
            table = f'"{schema or "public"}"."{Zhuisu.name.lower()}_events"'
        self.engine: Engine = engine
        self.dialect = engine.dialect.name
        if create:
            self._create_tables()
        self.events = EventRows(self.dialect, table, self._uuid_ids())
        self._prefix = f'"{schema}".' if schema else ""

    @property
    def snapshots_table(self) -> str:
        """The application's snapshot table for raw SQL (kept outside the log)."""
        if self.dialect == "sqlite":
            return '"stored_snapshots"'
        return f'"{self.schema or "public"}"."{Zhuisu.name.lower()}_snapshots"'

    def table_sql(self, name: str) -> str:
        """An audit table's name for raw SQL (schema-qualified on PostgreSQL)."""
        return f'{self._prefix}"{name}"'

    def insert_rows(self, conn: Connection, table: str, columns: Sequence[str],
                    rows: list[tuple]) -> None:
        """Bulk insert on the DB-API connection under ``conn`` (COPY on PostgreSQL)."""
        raw = conn.connection.driver_connection
        names = ", ".join(columns)
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            raw.executemany(f"INSERT INTO {self.table_sql(table)} ({names}) VALUES ({marks})",
                            rows)
            return
        with raw.cursor() as cur, cur.copy(
                f"COPY {self.table_sql(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def raw(self, conn: Connection, sql: str, params: Sequence = ()) -> list[tuple]:
        """``raw_rows`` with ``?`` placeholders on either database."""
        return raw_rows(conn, self.dialect,
                        sql if self.dialect == "sqlite" else sql.replace("?", "%s"), params)

    @classmethod
    def of(cls, source: Any) -> AuditStore:
        return source if isinstance(source, AuditStore) else cls(AuditConfig.of(source))

    def _create_tables(self) -> None:
        def first_state(conn: Connection) -> None:
            if conn.execute(select(merkle_state.c.id)).first() is None:
                conn.execute(insert(merkle_state).values(
                    id=1, size=0, last_position=0, frontier=b""))

        create_tables(self.engine, metadata, owner="zhuisu-audit-tables", then=first_state)

    def _uuid_ids(self) -> bool:
        if self.dialect == "sqlite":
            return True
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s AND column_name = 'originator_id'",
                (self.schema or "public", f"{Zhuisu.name.lower()}_events")).first()
        return row is None or row[0] == "uuid"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
