"""The adapters' own tables (tokens, access log, idempotency records), beside the events.

SQLAlchemy Core on the same database as the event store (``store.engines``, profile
``tables``), created by ``open_engine``.  No token is ever stored, only
its SHA-256; the access log refuses UPDATE and DELETE (a trigger on both databases).
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
    Table,
    Text,
    event,
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
    Column("token_id", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("method", String(8), nullable=False),
    Column("route", String(200), nullable=False),
    Column("subject_kind", String(32), nullable=False),
    Column("subject_id", String(64), nullable=False),
    # "/52/5226/522625/522625100/522625100001/": filtered by an administrator's subtree
    Column("subject_region", String(400), nullable=False),
    Column("request_id", String(128)),
    Index("ix_api_access_log_subject", "subject_id"),
    Index("ix_api_access_log_token", "token_id"),
)

idempotency = Table(
    "api_idempotency", metadata,
    Column("token_id", String(32), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("status", Integer),  # None while the first request is in flight
    Column("headers", Text),  # JSON list of [name, value] replayed with the body
    Column("body", LargeBinary),
)

_APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS api_access_log_no_{verb} BEFORE {verb.upper()} "
    f"ON api_access_log BEGIN SELECT RAISE(ABORT, 'api_access_log is append-only'); END"
    for verb in ("update", "delete")
]
_APPEND_ONLY_POSTGRES = [
    "CREATE OR REPLACE FUNCTION api_access_log_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'api_access_log is append-only'; END $$",
    "CREATE TRIGGER api_access_log_append_only BEFORE UPDATE OR DELETE ON api_access_log "
    "FOR EACH ROW EXECUTE FUNCTION api_access_log_append_only()",
]
for _sql in _APPEND_ONLY_SQLITE:
    event.listen(access_log, "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in _APPEND_ONLY_POSTGRES:
    event.listen(access_log, "after_create", DDL(_sql).execute_if(dialect="postgresql"))

def open_engine(database_url: str) -> Engine:
    """A new engine on the store's database, with these tables created if missing."""
    engine = new_engine(database_url, "tables")
    create_tables(engine, metadata, owner="zhuisu-api-tables")
    return engine
