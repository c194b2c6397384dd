"""What every read model shares: handlers per event type, and a unit of work for its rows.

A projection handles one batch of events at a time inside one transaction (see
``projections.runner``).  Handlers read and change rows through ``Rows``, which keeps the
batch's rows in memory (read-through by primary key, through the driver's cursor: a batch
reads thousands) and writes them with bulk statements
at the end, in the same transaction as the tracking position (or earlier, when a handler
must query what the batch wrote so far: ``Rows.flush``).  Catch-up after one command and
a rebuild from position 0 run exactly this code; only the batch size differs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    Table,
    and_,
    bindparam,
    or_,
    tuple_,
)

from projections.events import Event

Row = dict[str, Any]
Handler = Callable[[Any, Event, "Rows"], None]


def handles(*steps: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of the given event types ('FundAccount.Received')."""
    def mark(fn: Handler) -> Handler:
        fn.handles = steps  # type: ignore[attr-defined]
        return fn
    return mark


class Projection:
    """A read model: its tables, a handler per event type, a name for its tracking row.

    ``version`` is the layout of the tables: change it when they change, and the next
    start rebuilds this projection from position 0.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    tables: ClassVar[tuple[Table, ...]]
    handlers: ClassVar[dict[str, Handler]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.handlers = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for step in getattr(attr, "handles", ()):
                    cls.handlers[step] = attr

    @property
    def steps(self) -> frozenset[str]:
        return frozenset(self.handlers)

    def handle(self, event: Event, rows: Rows) -> None:
        handler = self.handlers.get(event.step)
        if handler is not None:
            handler(self, event, rows)

    def prefetch(self, events: list[Event], rows: Rows) -> None:
        """Load in bulk the existing rows the batch will touch (optional; speeds rebuilds)."""


class Rows:
    """The rows one batch reads and writes, flushed in bulk at the end of the batch."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._cache: dict[Table, dict[tuple, Row | None]] = defaultdict(dict)
        self._new: dict[Table, dict[int, Row]] = defaultdict(dict)  # by id(row)
        self._changed: dict[Table, dict[int, Row]] = defaultdict(dict)

    @staticmethod
    def key(table: Table, row: Row) -> tuple:
        return _pk_of(table)(row)

    def get(self, table: Table, *key: Any) -> Row | None:
        """The row with primary key ``key`` (this batch's version of it), or None."""
        cache = self._cache[table]
        if key in cache:
            return cache[key]
        found = self._select(table, [key])
        row = cache[key] = found[0] if found else None
        return row

    def need(self, table: Table, *key: Any) -> Row:
        row = self.get(table, *key)
        if row is None:
            raise LookupError(f"{table.name} has no row {key}: events out of order or a "
                              "projection bug")
        return row

    def load(self, table: Table, keys: Iterable[tuple]) -> None:
        """Read many rows by primary key in a few statements (rows already known are kept)."""
        cache = self._cache[table]
        wanted = list({k for k in keys if k not in cache})
        key_of = _pk_of(table)
        for i in range(0, len(wanted), KEYS_PER_QUERY):
            chunk = wanted[i:i + KEYS_PER_QUERY]
            for row in self._select(table, chunk):
                cache[key_of(row)] = row
            for k in chunk:
                cache.setdefault(k, None)

    def _select(self, table: Table, keys: list[tuple]) -> list[Row]:
        """The rows with these primary keys, read through the driver's cursor (statements
        made once per table and count; values decoded as SQLAlchemy would: JSON, and on
        SQLite dates and booleans): building and processing SQLAlchemy rows cost more than
        the query when a batch loads thousands."""
        bulk = _bulk(table, self.conn.dialect.name)
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            cursor.execute(bulk.select(len(keys)), bulk.key_values(keys))
            return [bulk.row(values) for values in cursor.fetchall()]
        finally:
            cursor.close()

    def insert(self, table: Table, row: Row) -> Row:
        """A new row (its key must not exist yet); returned so the handler can keep it."""
        key = self.key(table, row)
        cache = self._cache[table]
        if cache.get(key) is not None:
            raise LookupError(f"{table.name} already has a row {key}")
        cache[key] = row
        self._new[table][id(row)] = row
        return row

    def changed(self, table: Table, row: Row) -> None:
        """Mark a row returned by ``get`` as changed, to be written at the end of the batch."""
        if id(row) not in self._new[table]:
            self._changed[table][id(row)] = row

    def flush(self) -> None:
        """Write the batch's new and changed rows: one bulk statement per table and kind.

        Goes to the driver's ``executemany`` with statements made once per table: the
        per-row cost of SQLAlchemy's parameter processing would dominate a rebuild.
        """
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            for table in sorted(set(self._new) | set(self._changed), key=lambda t: t.name):
                bulk = _bulk(table, self.conn.dialect.name)
                if self._new[table]:
                    cursor.executemany(bulk.insert, [bulk.values(r) for r in
                                                     self._new[table].values()])
                if self._changed[table]:
                    cursor.executemany(bulk.update, [bulk.changes(r) for r in
                                                     self._changed[table].values()])
        finally:
            cursor.close()
        self._new.clear()
        self._changed.clear()


KEYS_PER_QUERY = 200


def keys_in(conn: Connection, columns: list[Any], keys: list[tuple]) -> tuple[Any, dict]:
    """``columns`` equal to one of ``keys``, in a form each store answers from its index:
    the clause and the parameters to execute it with."""
    clause, bind = _key_match(tuple(columns), conn.dialect.name, len(keys))
    return clause, bind(keys)


_KEY_MATCHES: dict[tuple[tuple[Any, ...], str, int], tuple[Any, Callable[[list], dict]]] = {}


def _key_shape(columns: tuple[Any, ...], dialect: str, n: int) -> tuple[Any, str, int]:
    """What the clause for ``n`` keys depends on: one ``IN`` whatever ``n`` (0), or n terms."""
    return columns, dialect, 0 if len(columns) == 1 or dialect == "postgresql" else n


def _key_match(columns: tuple[Any, ...], dialect: str,
               n: int) -> tuple[Any, Callable[[list], dict]]:
    """The clause "``columns`` equal to one of ``n`` keys", with bound parameters, and the
    function giving those parameters for a list of keys; built once per columns and count.

    SQLite scans the table for a row-value ``IN``, but searches the index for each term of
    an ``OR`` of equalities; PostgreSQL uses the index for both (one expanding ``IN``).
    """
    cache_key = _key_shape(columns, dialect, n)
    single_in = cache_key[2] == 0
    found = _KEY_MATCHES.get(cache_key)
    if found is not None:
        return found
    if single_in:
        target = columns[0] if len(columns) == 1 else tuple_(*columns)
        clause = target.in_(bindparam("keys", expanding=True))
        if len(columns) == 1:
            def bind(keys: list) -> dict:
                return {"keys": [k[0] for k in keys]}
        else:
            def bind(keys: list) -> dict:
                return {"keys": keys}
    else:
        clause = or_(*[and_(*[c == bindparam(f"k{i}_{j}") for j, c in enumerate(columns)])
                       for i in range(n)])

        def bind(keys: list) -> dict:
            return {f"k{i}_{j}": v for i, k in enumerate(keys) for j, v in enumerate(k)}
    found = (clause, bind)
    if n <= KEYS_PER_QUERY:  # the counts a chunked caller sends; larger ones are one-offs
        _KEY_MATCHES[cache_key] = found
    return found


_PK: dict[Table, Callable[[Row], tuple]] = {}


def _pk_of(table: Table) -> Callable[[Row], tuple]:
    """A function giving a row's primary key as a tuple."""
    f = _PK.get(table)
    if f is None:
        names = [c.name for c in table.primary_key.columns]
        if len(names) == 1:
            name = names[0]

            def f(r: Row) -> tuple:
                return (r[name],)
        else:
            f = itemgetter(*names)
        _PK[table] = f
    return f


def quote(name: str) -> str:
    return f'"{name}"'


class _Bulk:
    """A table's insert and update-by-key statements and row encoders, for one driver."""

    def __init__(self, table: Table, dialect: str):
        mark = "?" if dialect == "sqlite" else "%s"
        cols = [c.name for c in table.columns]
        pk = [c.name for c in table.primary_key.columns]
        rest = [c for c in cols if c not in pk]
        self.insert = (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, cols))}) "
                       f"VALUES ({', '.join([mark] * len(cols))})")
        self.update = (f"UPDATE {quote(table.name)} SET "
                       f"{', '.join(f'{quote(c)} = {mark}' for c in rest)} "
                       f"WHERE {' AND '.join(f'{quote(c)} = {mark}' for c in pk)}")
        self._columns, self._pk, self._mark, self._dialect = cols, pk, mark, dialect
        self._select_head = (f"SELECT {', '.join(map(quote, cols))} FROM {quote(table.name)} "
                             "WHERE ")
        self._selects: dict[int, str] = {}
        decoders = {c.name: _decoder(c.type, dialect) for c in table.columns}
        self._decoders = [(i, decoders[c]) for i, c in enumerate(cols) if decoders[c]]
        encoders = {c.name: _encoder(c.type, dialect) for c in table.columns}
        self._pk_enc = [encoders[c] for c in pk]
        self._insert_get = itemgetter(*cols)
        self._insert_enc = [(i, encoders[c]) for i, c in enumerate(cols) if encoders[c]]
        order = [*rest, *pk]
        self._update_get = itemgetter(*order)
        self._update_enc = [(i, encoders[c]) for i, c in enumerate(order) if encoders[c]]

    def select(self, n: int) -> str:
        """SELECT of the rows with ``n`` primary keys (as ``_key_match``: one ``IN`` for
        one column or on PostgreSQL; on SQLite an ``OR`` of equalities, which it answers
        from the index)."""
        sql = self._selects.get(n)
        if sql is None:
            pk, mark = self._pk, self._mark
            if len(pk) == 1:
                where = f"{quote(pk[0])} IN ({', '.join([mark] * n)})"
            elif self._dialect == "postgresql":
                one = f"({', '.join([mark] * len(pk))})"
                where = f"({', '.join(map(quote, pk))}) IN ({', '.join([one] * n)})"
            else:
                one = "(" + " AND ".join(f"{quote(c)} = {mark}" for c in pk) + ")"
                where = " OR ".join([one] * n)
            sql = self._select_head + where
            if n <= KEYS_PER_QUERY:
                self._selects[n] = sql
        return sql

    def key_values(self, keys: list[tuple]) -> list:
        """The parameters of ``select`` for ``keys``, encoded as the driver takes them."""
        if not any(self._pk_enc):
            return [v for k in keys for v in k]
        return [v if enc is None or v is None else enc(v)
                for k in keys for v, enc in zip(k, self._pk_enc)]

    def row(self, values: tuple) -> Row:
        """A row read by ``select``, its values decoded."""
        if self._decoders:
            values = list(values)
            for i, dec in self._decoders:
                if values[i] is not None:
                    values[i] = dec(values[i])
        return dict(zip(self._columns, values))

    def values(self, row: Row) -> tuple | list:
        return self._encode(self._insert_get(row), self._insert_enc)

    def changes(self, row: Row) -> tuple | list:
        return self._encode(self._update_get(row), self._update_enc)

    @staticmethod
    def _encode(values: tuple, encoders: list) -> tuple | list:
        if not encoders:
            return values
        out = list(values)
        for i, enc in encoders:
            out[i] = enc(out[i])
        return out


_json_text = json.JSONEncoder(ensure_ascii=False).encode  # = json.dumps(v, ensure_ascii=False),
# without making an encoder for each value


def _encoder(type_: Any, dialect: str) -> Callable[[Any], Any] | None:
    if isinstance(type_, JSON):
        return lambda v: None if v is None else _json_text(v)
    if isinstance(type_, Date) and dialect == "sqlite":
        return lambda v: None if v is None else v.isoformat()
    return None


def _decoder(type_: Any, dialect: str) -> Callable[[Any], Any] | None:
    """What SQLAlchemy's result processing does to a value the driver read (psycopg
    decodes JSON and gives dates and booleans itself; SQLite stores text and integers)."""
    if dialect != "sqlite":
        return None
    if isinstance(type_, JSON):
        return json.loads
    if isinstance(type_, Date):
        return _sqlite_date
    if isinstance(type_, Boolean):
        return bool
    return None


def _sqlite_date(value: Any) -> Any:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


_bulks: dict[tuple[Table, str], _Bulk] = {}


def _bulk(table: Table, dialect: str) -> _Bulk:
    b = _bulks.get((table, dialect))
    if b is None:
        b = _bulks[(table, dialect)] = _Bulk(table, dialect)
    return b
