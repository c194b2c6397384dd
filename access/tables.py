"""The adapters' own tables (tokens, access log, idempotency records), beside the events.

SQLAlchemy Core on the same database as the event store (``store.engines``, profile
``tables``), created by ``open_engine``.  No token is ever stored, only
its SHA-256; the access log and the token changes refuse UPDATE and DELETE (a trigger on
both databases).  Both are hash chains as well (``access.chain``: ``chain_hash`` on each
row, the heads in ``chain_heads``), since whoever can drop a trigger can edit a row.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Connection,
    Table,
    Text,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)

from store.engines import new_engine
from store.schema import create_tables

metadata = MetaData()

tokens = Table(
    "api_tokens", metadata,
    Column("id", String(32), primary_key=True),  # public id: shown, logged, revoked by
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the token
    Column("role", String(32), nullable=False),
    Column("region_code", String(64)),  # None: every region
    Column("region_level", String(16)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

access_log = Table(
    "api_access_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("token_id", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("method", String(8), nullable=False),
    Column("route", String(200), nullable=False),
    Column("subject_kind", String(32), nullable=False),
    Column("subject_id", String(300), nullable=False),
    # "/52/5226/522625/522625100/522625100001/": filtered by an administrator's subtree
    Column("subject_region", String(400), nullable=False),
    Column("request_id", String(128)),
    # SHA-256(previous row's chain_hash ‖ this row's content), hex (access.chain); NULL
    # only on rows written before the chain existed
    Column("chain_hash", String(64)),
    Index("ix_api_access_log_subject", "subject_id"),
    Index("ix_api_access_log_token", "token_id"),
)

token_changes = Table(  # every token created or revoked, in order (access.chain)
    "api_token_changes", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("token_id", String(64), nullable=False),
    Column("change", String(16), nullable=False),  # created | revoked | adopted (older store)
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("region_code", String(64)),
    Column("region_level", String(16)),
    Column("token_hash", String(64), nullable=False),
    Column("by", String(200), nullable=False),
    Column("chain_hash", String(64), nullable=False),
)

chain_heads = Table(  # the head of each chain, moved in every appending transaction
    "chain_heads", metadata,
    Column("chain", String(32), primary_key=True),
    Column("row_count", BigInteger, nullable=False),
    Column("last_id", BigInteger, nullable=False),
    Column("head", String(64), nullable=False),
)

idempotency = Table(
    "api_idempotency", metadata,
    Column("token_id", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("status", Integer),  # None while the first request is in flight
    Column("headers", Text),  # JSON list of [name, value] replayed with the body
    Column("body", LargeBinary),
)

def _append_only(table: Table) -> None:
    name = table.name
    for verb in ("update", "delete"):
        event.listen(table, "after_create", DDL(
            f"CREATE TRIGGER IF NOT EXISTS {name}_no_{verb} BEFORE {verb.upper()} ON {name} "
            f"BEGIN SELECT RAISE(ABORT, '{name} is append-only'); END").execute_if(
                dialect="sqlite"))
    for sql in [(f"CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger LANGUAGE "
                 f"plpgsql AS $$ BEGIN RAISE EXCEPTION '{name} is append-only'; END $$"),
                (f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE ON {name} "
                 f"FOR EACH ROW EXECUTE FUNCTION {name}_append_only()")]:
        event.listen(table, "after_create", DDL(sql).execute_if(dialect="postgresql"))


_append_only(access_log)
_append_only(token_changes)


def open_engine(database_url: str) -> Engine:
    """A new engine on the store's database, with these tables created if missing (and an
    older store's brought up to date: ``chain_hash`` on the access log, the chain heads,
    its tokens adopted into the token changes)."""
    engine = new_engine(database_url, "tables")
    create_tables(engine, metadata, owner="zhuisu-api-tables", then=_upgrade)
    return engine


def _upgrade(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("api_access_log")}
    if "chain_hash" not in columns:  # an older store: its rows precede the chain
        conn.execute(text("ALTER TABLE api_access_log ADD COLUMN chain_hash VARCHAR(64)"))
    ensure_heads(conn)


GENESIS = "0" * 64


def ensure_heads(conn: Connection) -> None:
    """A head row per chain (``access.chain``); rows already in a table (an older store)
    precede the chain."""
    present = set(conn.execute(select(chain_heads.c.chain)).scalars())
    for chain, table in (("access_log", access_log), ("token_changes", token_changes)):
        if chain not in present:
            last = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
            conn.execute(insert(chain_heads).values(chain=chain, row_count=0, last_id=last,
                                                    head=GENESIS))
