"""Settings, from the environment (prefix ``ZHUISU_``), and the wiring of the store.

One setting chooses the store: ``ZHUISU_DATABASE_URL``.
- ``sqlite:///path/to/zhuisu.db`` (default ``sqlite:///var/zhuisu.db``): embedded, no server.
- ``postgresql://user[:password]@host[:port]/dbname[?schema=name]``: production and scale-out.

The API's own tables (tokens, access log, idempotency records) live in the same database.
``ZHUISU_MAX_BODY_BYTES`` (default 1 MiB) is the largest request body the HTTP API reads
(``api.limits``).  ``ZHUISU_ADMIN_TOKEN_FILE`` (default ``var/admin-token``) is where ``zhuisu serve`` writes
an administrator's token, mode 0600, when the store has none; ``ZHUISU_PUBLIC_DOCS=false``
hides ``/docs`` and ``/openapi.json`` (they hold no data, so they are public by default).

The ID pepper (``ZHUISU_ID_PEPPER_FILE``) keys every ID-number hash in the log, so a store
is bound to the pepper it was made with: ``build_app`` keeps a keyed fingerprint of it in
the store (``store_settings``: HMAC-SHA256 of a fixed label under the pepper — never the
pepper itself) on first start and refuses to open the store with another pepper
(``InvalidInput`` naming ``ZHUISU_ID_PEPPER_FILE``): every hash would differ and 优亲厚友
matching would silently stop.

A SQLite store's file is made with mode 0600 before SQLite opens it, as the keys are
(``store.urls.private_sqlite_file``, here and wherever else a store may be opened first);
SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's permissions,
so they are 0600 too.  A new folder for it is made 0700.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from sqlalchemy import Column, Connection, MetaData, String, Table, select

from domain.application import Zhuisu
from domain.errors import InvalidInput
from store.engines import new_engine
from store.schema import create_tables
from store.urls import (
    FIELD,
    create_private_file,
    is_postgres,
    postgres_schema,
    sqlite_path,
)


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/zhuisu.db"
    id_pepper_file: Path = Path("var/id-pepper")
    log_format: str = "console"  # "json" in production
    log_level: str = "INFO"
    aggregate_cache: int = 5000
    admin_token_file: Path = Path("var/admin-token")
    log_key_file: Path = Path("var/log-key")  # the hash log's Ed25519 key (audit.logkey)
    log_origin: str = "zhuisu.example/log"  # first line of every checkpoint; unique per deployment
    checkpoint_every: float = 3600.0  # seconds between the server's checkpoints; 0: never
    idempotency_days: float = 7.0  # how long a first answer is kept for retries with its key
    public_docs: bool = True
    max_body_bytes: int = 1024 * 1024  # the HTTP API refuses larger bodies (api.limits)
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "database_url": env.get("ZHUISU_DATABASE_URL", cls.database_url),
            "id_pepper_file": Path(env.get("ZHUISU_ID_PEPPER_FILE", str(cls.id_pepper_file))),
            "log_format": env.get("ZHUISU_LOG_FORMAT", cls.log_format),
            "log_level": env.get("ZHUISU_LOG_LEVEL", cls.log_level),
            "aggregate_cache": int(env.get("ZHUISU_AGGREGATE_CACHE", cls.aggregate_cache)),
            "admin_token_file": Path(env.get("ZHUISU_ADMIN_TOKEN_FILE",
                                             str(cls.admin_token_file))),
            "log_key_file": Path(env.get("ZHUISU_LOG_KEY_FILE", str(cls.log_key_file))),
            "log_origin": env.get("ZHUISU_LOG_ORIGIN", cls.log_origin),
            "checkpoint_every": float(env.get("ZHUISU_CHECKPOINT_EVERY", cls.checkpoint_every)),
            "idempotency_days": float(env.get("ZHUISU_IDEMPOTENCY_DAYS",
                                              cls.idempotency_days)),
            "public_docs": env.get("ZHUISU_PUBLIC_DOCS", "true").strip().lower()
            not in ("0", "false", "no", "off"),
            "max_body_bytes": _positive_int(env, "ZHUISU_MAX_BODY_BYTES", cls.max_body_bytes),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def is_postgres(self) -> bool:
        return is_postgres(self.database_url)

    def eventsourcing_env(self) -> dict[str, str]:
        """Translate the one database URL into the eventsourcing library's settings."""
        url = urlparse(self.database_url)
        env = {"AGGREGATE_CACHE_MAXSIZE": str(self.aggregate_cache)} if self.aggregate_cache else {}
        if url.scheme == "sqlite":
            path = sqlite_path(self.database_url)
            if not path:
                raise InvalidInput("sqlite URL needs a file path: sqlite:///path/to/file.db",
                                   field=FIELD)
            if path != ":memory:":
                create_private_file(Path(path))
            env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=path,
                       SQLITE_LOCK_TIMEOUT="30")
        elif self.is_postgres:
            schema = postgres_schema(self.database_url)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                POSTGRES_DBNAME=url.path.lstrip("/") or "postgres",
                POSTGRES_HOST=url.hostname or "127.0.0.1",
                POSTGRES_PORT=str(url.port or 5432),
                POSTGRES_USER=unquote(url.username or "postgres"),
                POSTGRES_PASSWORD=unquote(url.password or ""),
                POSTGRES_CONNECT_TIMEOUT="5",
                POSTGRES_POOL_SIZE="5",
                # Insert through the library's stored function: one round trip per batch,
                # and large batches (bulk loads) do not stall on the wire.
                POSTGRES_ENABLE_DB_FUNCTIONS="y",
            )
            if schema:
                env["POSTGRES_SCHEMA"] = schema
        else:
            raise InvalidInput("must start with sqlite:/// or postgresql://",
                               field=FIELD)
        env.update(self.extra_env)
        return env

    def id_pepper(self, create: bool = True) -> bytes:
        """The secret that keys ID-number hashes; made on first start, mode 0600."""
        path = self.id_pepper_file
        if not path.exists():
            if not create:
                raise InvalidInput(
                    f"the ID pepper file {path} is missing but the store already holds events; "
                    "restore it (a new pepper would make every stored ID hash unmatchable)",
                    field="ZHUISU_ID_PEPPER_FILE")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())


def _positive_int(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None:
        return default
    if not value.strip().isdigit() or int(value) <= 0:
        raise InvalidInput("must be a positive whole number", field=name)
    return int(value)


_store_metadata = MetaData()
store_settings = Table(
    "store_settings", _store_metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)
PEPPER_FINGERPRINT = "id_pepper_fingerprint"


def pepper_fingerprint(pepper: bytes) -> str:
    """A keyed fingerprint of the ID pepper: it tells peppers apart and reveals nothing of
    them (HMAC-SHA256 under the pepper of a fixed label)."""
    return hmac.new(pepper, b"zhuisu/id-pepper-fingerprint/v1", hashlib.sha256).hexdigest()


def check_id_pepper(database_url: str, pepper: bytes, pepper_file: Path) -> None:
    """Record the pepper's fingerprint in a store that has none; refuse a different pepper."""
    if not is_postgres(database_url) and sqlite_path(database_url) in ("", ":memory:"):
        return  # an in-memory store lives and dies with this process
    fingerprint = pepper_fingerprint(pepper)

    def record_or_compare(conn: Connection) -> None:
        stored = conn.execute(select(store_settings.c.value).where(
            store_settings.c.name == PEPPER_FINGERPRINT)).scalar()
        if stored is None:
            conn.execute(store_settings.insert().values(name=PEPPER_FINGERPRINT,
                                                        value=fingerprint))
        elif not hmac.compare_digest(stored, fingerprint):
            raise InvalidInput(
                f"the ID pepper in {pepper_file} is not the one this store was made with (its "
                "fingerprint differs); restore the original pepper file: with another pepper "
                "every ID number hashes differently and 优亲厚友 matching stops",
                field="ZHUISU_ID_PEPPER_FILE")

    engine = new_engine(database_url, "tables")
    try:
        create_tables(engine, _store_metadata, owner="zhuisu-store-settings",
                      then=record_or_compare)
    finally:
        engine.dispose()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def build_app(settings: Settings | None = None) -> Zhuisu:
    settings = settings or Settings.from_env()
    app = Zhuisu(settings.eventsourcing_env(), clock=utc_now)
    try:
        app.id_pepper = settings.id_pepper(create=not app.recorder.max_notification_id())
        check_id_pepper(settings.database_url, app.id_pepper, settings.id_pepper_file)
    except BaseException:
        app.close()
        raise
    return app
